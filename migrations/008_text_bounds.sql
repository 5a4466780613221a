-- Bounds on the free text the API publishes in its response schemas: staff
-- names (GET /staff) at most 200 characters each (generous for any real
-- name), experiment kinds (GET /exp) at most 100, and no control characters
-- (C0, DEL, C1) in either, as for usernames. family may be empty.
ALTER TABLE staff
  ADD CONSTRAINT staff_personal_bounds CHECK (char_length(personal) <= 200 AND personal !~ '[\x01-\x1f\x7f-\x9f]'),
  ADD CONSTRAINT staff_family_bounds CHECK (char_length(family) <= 200 AND family !~ '[\x01-\x1f\x7f-\x9f]');
ALTER TABLE experiment
  ADD CONSTRAINT experiment_kind_bounds CHECK (char_length(kind) <= 100 AND kind !~ '[\x01-\x1f\x7f-\x9f]');
