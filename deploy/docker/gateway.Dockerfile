# syntax=docker/dockerfile:1
# meridian-gateway, the gateway: Raft control plane, federation endpoint, query API and UI.
#
#   docker build -f deploy/docker/gateway.Dockerfile -t meridian/meridian-gateway:0.1.0 .
#
# Build context: the repository root. The runtime image is Debian slim with
# the binary, CA certificates and the health check script; it runs as the
# non-root user 65532 and writes only to /var/lib/meridian (a volume), so
# it runs with a read-only root filesystem (docker run --read-only, or the
# Helm chart's readOnlyRootFilesystem).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The lockfile is honoured (--locked); cargo's caches survive between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p gateway --bin meridian-gateway \
 && install -m 0755 target/dist/meridian-gateway /usr/local/bin/meridian-gateway

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 meridian \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin meridian \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/meridian
COPY --from=build /usr/local/bin/meridian-gateway /usr/local/bin/meridian-gateway
COPY deploy/docker/healthcheck.sh /usr/local/bin/meridian-healthcheck
ENV MERIDIAN_DATA_DIR=/var/lib/meridian
USER 65532:65532
WORKDIR /var/lib/meridian
VOLUME ["/var/lib/meridian"]
EXPOSE 16686 3200 9411 4320 4321 4317 4318
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["meridian-healthcheck", "16686", "/healthz"]
ENTRYPOINT ["meridian-gateway"]
