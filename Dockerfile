# syntax=docker/dockerfile:1
#
# idhost: the host binary plus the three connector plugins, on a non-root base.
#
# With a registry (Docker or Podman that can pull images):
#   docker build -t idhost:0.1.0 .
#   docker run --rm -p 9464:9464 -v $PWD/idhost.toml:/etc/idhost/idhost.toml:ro idhost:0.1.0
# Without one (what CI does, see deploy/image/build.sh): binaries built on the host by cargo
# are copied from dist/ onto a Debian root filesystem made locally with debootstrap:
#   deploy/image/build.sh --release
# The image runs `idhost run` (the daemon); any other subcommand works too:
#   docker run --rm idhost:0.1.0 plugins

# Where the binaries come from: `build` compiles them in a Rust image; `prebuilt` takes dist/
# (bin/idhost and plugins/*.so, staged by deploy/image/build.sh). Only the chosen stage is built.
ARG BINARIES=build
# The runtime base: glibc 2.36 (bookworm), libgcc, CA certificates and a user 65532 `nonroot`.
# distroless/cc-debian12 is that, with no shell; deploy/image/build.sh makes the same from
# Debian's packages with debootstrap.
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# Build stage: the same Debian release as the runtime (glibc 2.36 / bookworm), so the binary and
# the plugins link against the glibc they run on. Rust 1.95 is what the workspace is built and
# tested with (rust-version in Cargo.toml is the floor).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target between builds; the results are copied out of the
# cached target dir because it is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p idhost -p idhost-ironclad -p idhost-entra -p idhost-clickwrap \
 && mkdir -p /out/bin /out/plugins /out/state \
 && cp target/release/idhost /out/bin/idhost \
 && cp target/release/libidhost_ironclad.so \
       target/release/libidhost_entra.so \
       target/release/libidhost_clickwrap.so /out/plugins/

FROM scratch AS prebuilt
COPY dist/ /out/

FROM ${BINARIES} AS binaries

FROM ${BASE_IMAGE}
COPY --from=binaries /out/bin/idhost /usr/bin/idhost
# Plugins are found here when neither --plugin-dir nor plugin_dir says otherwise. They are
# root-owned and not writable by the runtime user (idhost refuses plugins others can write).
COPY --from=binaries /out/plugins/libidhost_ironclad.so /out/plugins/libidhost_entra.so /out/plugins/libidhost_clickwrap.so /usr/lib/idhost/plugins/
# The state database (connector state, checkpoints, schedule position) and SQLite sinks live in
# /var/lib/idhost, owned by the runtime user (mount a volume there to keep them). The config is
# read from /etc/idhost/idhost.toml.
COPY --from=binaries --chown=65532:65532 /out/state/ /var/lib/idhost/
WORKDIR /var/lib/idhost
ENV IDHOST_PLUGIN_DIR=/usr/lib/idhost/plugins \
    IDHOST_CONFIG=/etc/idhost/idhost.toml \
    IDHOST_LISTEN=0.0.0.0:9464 \
    IDHOST_LOG_FORMAT=json
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/bin/idhost"]
CMD ["run"]
