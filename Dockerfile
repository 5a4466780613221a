# tokenlab API image. Build: docker build -t tokenlab .   (docker compose builds it too)
#
# Base image: node:24-slim (Debian bookworm, glibc), not node:24-alpine (musl).
# Both would work: @node-rs/argon2 ships prebuilt binaries for glibc and musl,
# and PGlite is WebAssembly. slim is chosen because the developers' machines
# and CI are Debian/glibc: the image then loads the same argon2 binary
# (linux-x64-gnu) and the same libc (DNS, locale) the test suite runs on.
# alpine would save some 40 MB and swap in a binary and a libc that no test
# here exercises. Pin a digest (node:24-slim@sha256:...) for reproducible builds.

# --- build: all dependencies, TypeScript compiled into dist/ ---
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
COPY resource-server ./resource-server
COPY scripts ./scripts
COPY migrations ./migrations
COPY public ./public
# dist/src/server.js, dist/scripts/db.js; migrations/ and public/ are copied into dist/.
RUN npm run build

# --- runtime: production dependencies and dist/ only, as a non-root user ---
FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# DATA_DIR (./data) is used only without DATABASE_URL (embedded PGlite);
# it must be writable by the unprivileged user. The app files stay root-owned.
RUN mkdir -p /app/data && chown node:node /app/data
# The node images ship an unprivileged `node` user (uid 1000).
USER node
EXPOSE 3000
# Liveness, without curl (slim has none): Node 24's fetch against /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node as PID 1 is fine here: the server handles SIGTERM itself (close-with-grace).
CMD ["node", "dist/src/server.js"]
