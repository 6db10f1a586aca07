# connector-gateway container image.
# The base image is a build argument so that both the public image and a locally built one work:
#   docker build --build-arg BASE_IMAGE=local/node:24-bookworm-slim --network=host -t connector-gateway .
ARG BASE_IMAGE=node:24-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE_IMAGE}
ENV NODE_ENV=production \
    GATEWAY_CONFIG=/etc/connector-gateway/gateway.yaml \
    ADMIN_PORT=8025
RUN groupadd --system gateway \
 && useradd --system --gid gateway --home-dir /var/lib/connector-gateway --shell /usr/sbin/nologin gateway \
 && mkdir -p /var/lib/connector-gateway/queue /etc/connector-gateway/certs \
 && chown -R gateway:gateway /var/lib/connector-gateway
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# An example policy; mount your own over /etc/connector-gateway (policy and certs/).
COPY deploy/container/gateway.yaml /etc/connector-gateway/gateway.yaml
USER gateway
# The queue must outlive the container.
VOLUME ["/var/lib/connector-gateway"]
# Unprivileged ports inside; publish 25 → 2525 (docker -p 25:2525, or the Service's targetPort).
EXPOSE 2525 2465 8025
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.ADMIN_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The daemon handles SIGTERM: stops accepting, finishes sessions (bounded), exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
