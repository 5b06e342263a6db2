# The API image: compiled JavaScript on Node 24 (LTS), no compiler, no dev dependencies, not root.
# Build: docker build -t dalle-serve-api .   Run: see docker-compose.yml.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# No install scripts run (package.json allowScripts); the variable makes onnxruntime-node's skip
# its CUDA download under npm versions that still run them. The API runs no GPU work.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY package.json ./
# The API reads pack manifests (GET /models, request validation); the schema lives in packs/.
COPY packs ./packs
COPY public ./public
USER node
EXPOSE 3000
CMD ["node", "dist/api/main.js"]
