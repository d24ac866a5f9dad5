# syntax=docker/dockerfile:1
# docker build -t system-service .   (README.md, "Docker")
#
# test/production.test.ts builds the same file tree from this file: it copies what the COPY
# lines copy, runs the RUN lines that start with `npm` (the others set up the system: user,
# /data) and starts the CMD with the ENV below. Change the app's steps here, not there.

# Build stage: every dependency (TypeScript, types), the compiled service in /app/dist.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs scripts/
COPY src src
RUN npm run build

# Runtime stage: production dependencies only (no tsx, no types), the compiled service and CLI.
FROM node:20-bookworm-slim
# production: JWT_SECRET_KEY and CHANNEL_SECRETS_KEY are required, start-up names a missing one.
# Without DATABASE_URL the embedded PostgreSQL keeps its cluster in DATA_DIR (a volume).
ENV NODE_ENV=production \
    ENVIRONMENT=production \
    DATA_DIR=/data \
    SERVICE_PORT=8004
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
COPY bin bin
COPY deploy/healthcheck.mjs deploy/
COPY --from=build /app/dist dist
# The base image's `node` user (uid 1000) runs the service and its embedded PostgreSQL, which
# refuses to run as root; `system-service` on PATH is the CLI (`docker exec <container> system-service ...`).
RUN mkdir -p /data && chown node:node /data && ln -s /app/bin/system-service.js /usr/local/bin/system-service
USER node
VOLUME ["/data"]
EXPOSE 8004
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["node", "/app/deploy/healthcheck.mjs"]
CMD ["node", "dist/main.js"]
