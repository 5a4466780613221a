-- A refresh token's `replaced_by` loses its foreign key. The statement that
-- spends a token inserts its replacement, in the same login, so the reference
-- always holds when it is written; tokens are deleted only with their whole
-- login (ON DELETE CASCADE from logins), so it cannot dangle either. The key
-- cost a referential-integrity check on every refresh and an extra trigger
-- per token when a login was purged.
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_replaced_by_fkey;
