# syntax=docker/dockerfile:1
#
# idhost: the host binary plus the three connector plugins, on a distroless, non-root base.
#   docker build -t idhost .
#   docker run --rm -p 9464:9464 -v $PWD/idhost.toml:/etc/idhost/idhost.toml:ro idhost
# The image runs `idhost run` (the daemon); any other subcommand works too:
#   docker run --rm idhost plugins
#
# Build stage: the same Debian release as the runtime (glibc 12 / bookworm), so the binary and
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
 && mkdir -p /out/plugins /out/state \
 && cp target/release/idhost /out/idhost \
 && cp target/release/libidhost_ironclad.so \
       target/release/libidhost_entra.so \
       target/release/libidhost_clickwrap.so /out/plugins/

# Runtime: glibc, libgcc, CA certificates and a `nonroot` user (65532), nothing else (no shell).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/idhost /usr/bin/idhost
# Plugins are found here when neither --plugin-dir nor plugin_dir says otherwise.
COPY --from=build /out/plugins/ /usr/lib/idhost/plugins/
# The state database (connector state, checkpoints, schedule position) and SQLite sinks live in
# /var/lib/idhost, owned by the runtime user (mount a volume there to keep them). The config is
# read from /etc/idhost/idhost.toml.
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/idhost/
WORKDIR /var/lib/idhost
ENV IDHOST_PLUGIN_DIR=/usr/lib/idhost/plugins \
    IDHOST_CONFIG=/etc/idhost/idhost.toml \
    IDHOST_LISTEN=0.0.0.0:9464 \
    IDHOST_LOG_FORMAT=json
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/bin/idhost"]
CMD ["run"]
