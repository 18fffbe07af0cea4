# syntax=docker/dockerfile:1
# meridian-agent, the per-cluster agent: OTLP/Zipkin receivers, sampling, WAL, mTLS forwarder.
#
#   docker build -f deploy/docker/agent.Dockerfile -t meridian/meridian-agent:0.1.0 .
#
# Build context: the repository root. The runtime image is Debian slim with
# the binary, CA certificates and the health check script; it runs as the
# non-root user 65532 and writes only to /var/lib/meridian-agent (a volume), so
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
    cargo build --profile dist --locked -p edge-agent --bin meridian-agent \
 && install -m 0755 target/dist/meridian-agent /usr/local/bin/meridian-agent

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 meridian \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin meridian \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/meridian-agent
COPY --from=build /usr/local/bin/meridian-agent /usr/local/bin/meridian-agent
COPY deploy/docker/healthcheck.sh /usr/local/bin/meridian-healthcheck
ENV MERIDIAN_BUFFER_DIR=/var/lib/meridian-agent
USER 65532:65532
WORKDIR /var/lib/meridian-agent
VOLUME ["/var/lib/meridian-agent"]
EXPOSE 4317 4318 9411 5778 5779 13133
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["meridian-healthcheck", "13133", "/healthz"]
ENTRYPOINT ["meridian-agent"]
