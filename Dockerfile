# syntax=docker/dockerfile:1
#
# Mission Control: multi-stage build, small non-root runtime image.
#   docker build -t mission-control .
#   docker run --env-file .env mission-control            # serve on :8000
#   docker run --env-file .env mission-control migrate    # apply schema/ and exit
#   docker build --target connector -t mc-connector .     # the gateway hosts' connector
#   (docs/connector.md)

# The build stage must satisfy `rust-version` in Cargo.toml; override with
# --build-arg RUST_VERSION=1 to track the newest stable toolchain instead.
ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies first: this layer is rebuilt only when Cargo.toml/Cargo.lock
# change, not on every source edit. The stub targets only need to exist (the
# stub build.rs makes Cargo build any [build-dependencies] here too); if
# Cargo.toml ever declares explicit [[bin]]/[[bench]] paths, stub those as well.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > build.rs \
 && cargo build --release --locked --bin mission-control \
 && rm -rf src build.rs

# schema/ (see build.rs) and contract/ (the reference's request schemas, for
# validation) are embedded into the binary at compile time.
COPY build.rs ./
COPY src ./src
COPY schema ./schema
COPY contract ./contract

# COPY keeps the build context's mtimes, which are older than the stubs'
# artifacts, so Cargo would call our own crate fresh and ship the stub binary.
# Dropping its fingerprints and build-script output forces a rebuild of this
# crate only (dependencies stay cached).
RUN rm -rf target/release/.fingerprint/mission-control-* \
           target/release/build/mission-control-* \
           target/release/deps/mission_control-* \
           target/release/deps/libmission_control-* \
 && cargo build --release --locked --bin mission-control --bin mc-connector

# ---------------------------------------------------------------------------
# mc-connector, for a gateway's host (run with --network host: it dials the gateway on
# loopback). Before `runtime`, so that a plain `docker build` still builds the server.
FROM debian:bookworm-slim AS connector
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 mc-connector \
 && useradd --system --uid 10002 --gid mc-connector --no-create-home \
            --shell /usr/sbin/nologin mc-connector \
 && install -d -o 10002 -g 10002 -m 0700 /var/lib/mc-connector
COPY --from=build /src/target/release/mc-connector /usr/local/bin/mc-connector
USER 10002:10002
# The connector's identity (gateway id, relay token, device key): keep it across upgrades.
VOLUME /var/lib/mc-connector
ENTRYPOINT ["mc-connector"]

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: the roots outbound HTTPS is verified against (souls directory,
# pack repositories). git: skill pack syncs clone with it. curl: only for the
# HEALTHCHECK below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl git \
 && rm -rf /var/lib/apt/lists/*

# Fixed uid/gid so volume ownership and Kubernetes runAsUser stay predictable.
RUN groupadd --system --gid 10001 mc \
 && useradd --system --uid 10001 --gid mc --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin mc

COPY --from=build /src/target/release/mission-control /usr/local/bin/mission-control
# Taken from the build stage so the migrations always match the compiled binary.
COPY --from=build /src/schema /app/schema

WORKDIR /app
# Numeric so that runtimes which check "runAsNonRoot" can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 8000

# /healthz is liveness only (process up, HTTP answering); dependency checks
# live in /readyz, which the load balancer or orchestrator should use instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

ENTRYPOINT ["mission-control"]
CMD ["serve", "--bind", "0.0.0.0:8000"]
