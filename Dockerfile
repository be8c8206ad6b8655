# The job runner's container: `offsite job run` on a jobs file, metrics and health on
# :9184. Build: docker build -t offsite . ; run (the jobs file and password files
# mounted read-only, store credentials in the environment):
#   docker run -v /etc/offsite:/etc/offsite:ro -e AWS_ACCESS_KEY_ID=… -p 9184:9184 offsite
# Probe /health for liveness; SIGTERM (docker stop) finishes the packs in flight and
# commits what is whole — give it a stop timeout of a minute or more.

# The base images, by version (the toolchain at least the crates' rust-version). For a
# release, images/pin-base-images.sh (needs Docker) rewrites these two defaults to
# TAG@sha256:DIGEST, so a rebuild starts from the same bytes; terraform/check.sh checks
# the toolchain's version against Cargo.toml.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY archiver/Cargo.toml archiver/Cargo.toml
RUN mkdir -p src archiver/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > archiver/src/main.rs \
    && cargo build --release --locked -p offsite \
    && rm -rf src archiver/src
COPY src src
# The built-in price table (src/prices.rs includes it).
COPY docs/prices.toml docs/prices.toml
COPY archiver/src archiver/src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p offsite \
    && strip target/release/offsite

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
# What the image is, for registries and scanners (set VERSION and REVISION at build:
# docker build --build-arg VERSION=$(git describe) --build-arg REVISION=$(git rev-parse HEAD)).
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="offsite" \
      org.opencontainers.image.description="offsite job runner: backup copies of restore points, re-packed, compressed and encrypted, into another store" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/offsite --create-home offsite
COPY --from=build /src/target/release/offsite /usr/local/bin/offsite
USER 10001:10001
WORKDIR /var/lib/offsite
EXPOSE 9184
# The continuous runner's /health, by the binary itself (no curl in the image).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s CMD ["offsite", "job", "probe"]
ENTRYPOINT ["offsite", "job", "run"]
CMD ["--config", "/etc/offsite/jobs.toml", "--metrics-listen", "0.0.0.0:9184", "--log-format", "json"]
