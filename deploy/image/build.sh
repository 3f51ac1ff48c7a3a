#!/usr/bin/env bash
# Builds the idhost container image without a registry, then runs it as its non-root user.
#
#   deploy/image/build.sh [--release | --debug | --binaries DIR] [--base-image IMAGE] [--keep-base]
#
# 1. Stages dist/ from cargo's output: bin/idhost and the three connector plugins
#    (--release, the default, builds them with `cargo build --release --locked`; --debug takes what
#    `cargo build --workspace` already put in target/debug, which is what CI has after its tests;
#    --binaries DIR takes them from DIR as they are).
# 2. Makes the runtime base from Debian's packages with debootstrap (bookworm, minbase,
#    ca-certificates, a user 65532 `nonroot`: what distroless/cc-debian12:nonroot provides), unless
#    --base-image names one that exists; --keep-base reuses localhost/idhost-base:bookworm if present.
# 3. Builds the Dockerfile's final stage with buildah (BINARIES=prebuilt, so the Rust build stage
#    and its registry image are never touched), tagged with the image name deployment.yaml uses.
# 4. Smoke test, as the image's user (65532): `idhost plugins` lists the three connectors and
#    `idhost demo` syncs the three simulators into SQLite inside the container, with no network
#    but loopback.
#
# Needs root (rootful podman), and Debian's podman, buildah, debootstrap and runc.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=release
binaries=""
base_image=""
keep_base=false
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --debug) profile=debug ;;
    --binaries) profile=prebuilt; binaries="$2"; shift ;;
    --base-image) base_image="$2"; shift ;;
    --keep-base) keep_base=true ;;
    *) echo "deploy/image/build.sh: unknown argument \`$1\` (use --release, --debug, --binaries DIR, --base-image IMAGE, --keep-base)" >&2; exit 2 ;;
  esac
  shift
done

for tool in podman buildah debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "deploy/image/build.sh: \`$tool\` is not installed (apt-get install podman buildah debootstrap runc)" >&2
    exit 2
  }
done

# Rootful podman in a VM whose cgroups are hybrid (v1 controllers + an empty v2 tree) and whose
# root lacks CAP_SYS_RESOURCE: runc (crun refuses hybrid cgroups), cgroupfs, and rlimits no higher
# than the caller's. On an ordinary machine these settings are harmless.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/image/containers.conf}"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
image="idhost:${version}"
deployed=$(sed -n 's/^ *image: *//p' deploy/kubernetes/deployment.yaml)
if [ "$deployed" != "$image" ]; then
  echo "deploy/image/build.sh: deploy/kubernetes/deployment.yaml runs \`$deployed\`, but this build tags \`$image\` (workspace version $version)" >&2
  exit 1
fi

echo "== binaries ($profile)"
if [ "$profile" = release ]; then
  cargo build --release --locked -p idhost -p idhost-ironclad -p idhost-entra -p idhost-clickwrap
fi
out="${binaries:-target/$profile}"
rm -rf dist
mkdir -p dist/bin dist/plugins dist/state
cp "$out/idhost" dist/bin/idhost
for plugin in libidhost_ironclad.so libidhost_entra.so libidhost_clickwrap.so; do
  if [ ! -f "$out/$plugin" ]; then
    echo "deploy/image/build.sh: $out/$plugin is missing: build the workspace first (cargo build --workspace, with --release for a release image)" >&2
    exit 1
  fi
  cp "$out/$plugin" dist/plugins/
done
# Debug info stays in target/ (symbols stay, so backtraces keep function names): the image
# is a fifth of the size.
strip --strip-debug dist/bin/idhost dist/plugins/*.so
# Plugins must not be writable by the runtime user: idhost refuses group/other-writable files.
chmod 0755 dist/bin/idhost
chmod 0644 dist/plugins/*.so

if [ -z "$base_image" ]; then
  base_image=localhost/idhost-base:bookworm
  if $keep_base && podman image exists "$base_image"; then
    echo "== base: reusing $base_image"
  else
    echo "== base: debootstrap bookworm (minbase) → $base_image"
    rootfs=$(mktemp -d /tmp/idhost-base.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" http://deb.debian.org/debian >/tmp/idhost-debootstrap.log 2>&1 || {
      echo "deploy/image/build.sh: debootstrap failed; its log:" >&2
      tail -20 /tmp/idhost-debootstrap.log >&2
      exit 1
    }
    # The user distroless calls nonroot; the image runs as it.
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$rootfs/etc/passwd"
    echo 'nonroot:x:65532:' >>"$rootfs/etc/group"
    mkdir -p "$rootfs/home/nonroot" && chown 65532:65532 "$rootfs/home/nonroot"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import - "$base_image" >/dev/null
  fi
fi

echo "== image: $image from $base_image"
buildah bud --quiet --layers=false \
  --build-arg BINARIES=prebuilt --build-arg "BASE_IMAGE=$base_image" \
  -f Dockerfile -t "$image" . >/dev/null
podman image inspect "$image" --format 'size {{.Size}} bytes, user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}'
user=$(podman image inspect "$image" --format '{{.Config.User}}')
if [ "$user" != "65532:65532" ]; then
  echo "deploy/image/build.sh: the image runs as \`$user\`, not 65532:65532" >&2
  exit 1
fi

echo "== smoke: idhost plugins (as $user)"
plugins=$(podman run --rm "$image" plugins)
echo "$plugins"
for name in ironclad entra clickwrap; do
  grep -qw "$name" <<<"$plugins" || { echo "deploy/image/build.sh: \`idhost plugins\` in the image does not list $name" >&2; exit 1; }
done

echo "== smoke: idhost demo (as $user, loopback only)"
podman run --rm "$image" --log-level warn demo --ironclad-users 200 --entra-users 300 --clickwrap-users 200
echo "== image $image built and run"
