# syntax=docker/dockerfile:1
# cilium-migration-guard: `node dist/cli.js <command>` on a distroless Node 26 (LTS) base.
#
# Three stages: `build` compiles TypeScript with every dependency; `deps` installs production
# dependencies only, from the lockfile, into a clean tree (so the dev-only `node` runtime package,
# TypeScript, vitest, ... can never reach the image, whatever prune would have missed); the
# runtime copies dist/, that node_modules and examples/ onto a base with no shell or npm.
#
#   docker build -t ghcr.io/cilium-migration-guard/cilium-migration-guard:0.1.0 .

FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the image already has Node 26; the dev-only `node` package would download
# another runtime in its install script, and nothing the build needs runs install scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:26-trixie-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Distroless Node 26 on Debian 13, :nonroot variant (uid/gid 65532). Its entrypoint is node.
FROM gcr.io/distroless/nodejs26-debian13:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/package.json ./package.json
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY examples ./examples
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "dist/cli.js"]
CMD ["serve"]
