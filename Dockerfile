# syntax=docker/dockerfile:1
# Lethe's image: a release build in the official Swift image, then a slim Debian bookworm
# runtime with only the C libraries lethe links (libpq, libssh2, libarchive). The Swift
# runtime is linked statically, so the runtime stage needs no Swift toolchain.
#
#   docker build -t lethe .
#   docker run --rm -e LETHE_DATABASE_URL=postgresql://… lethe migrate
#
# compose/compose.yaml and deploy/kubernetes/ use it; scripts/check-deploy lints this file
# (hadolint) and checks that every apt package named here exists in bookworm.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
# Unpinned on purpose: bookworm's security updates replace these versions, and a pinned
# version that has left the archive breaks every build; the suite is fixed by the base tag.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libarchive-dev libpq-dev libssh2-1-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Dependencies first: this layer is reused until Package.swift changes.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# The manifest names the test targets' directories: SwiftPM needs them to load the package.
COPY Tests ./Tests
# The EmbedMigrations plugin compiles migrations/*.sql into the binary: none at run time.
COPY Plugins ./Plugins
COPY migrations ./migrations
RUN swift build -c release --static-swift-stdlib --product lethe \
    && install -D -m 755 "$(swift build -c release --show-bin-path)/lethe" /out/usr/local/bin/lethe

FROM ${RUNTIME_IMAGE} AS runtime
# Unpinned for the same reason as above.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libarchive13 libpq5 libssh2-1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lethe \
    && useradd --system --uid 10001 --gid lethe --home-dir /var/lib/lethe --create-home \
        --shell /usr/sbin/nologin lethe \
    && install -d -o lethe -g lethe -m 700 /var/tmp/lethe-spool
COPY --from=build /out/ /
COPY deploy/docker/lethe-healthcheck /usr/local/bin/lethe-healthcheck
LABEL org.opencontainers.image.title="lethe" \
      org.opencontainers.image.description="Per-tenant data retention, archiving and deletion workers for PostgreSQL"
USER 10001:10001
WORKDIR /var/lib/lethe
# The archive spool (archive.spool_directory's default); mount a volume here in production.
VOLUME ["/var/tmp/lethe-spool"]
# Port of --metrics-address / metrics.address in the compose file and the manifests.
EXPOSE 9090
ENV LETHE_HEALTH_PORT=9090
# /healthz answers when lethe runs with --metrics-address (or metrics.address) on
# LETHE_HEALTH_PORT; one-shot commands (migrate, account …) exit before the first check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/lethe-healthcheck"]
ENTRYPOINT ["/usr/local/bin/lethe"]
CMD ["--help"]
