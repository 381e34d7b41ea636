#!/usr/bin/env bash
# Set up real containers for the container tests (tests/containers; `scripts/test.sh` runs them as
# their own step): podman from Debian, a podman configuration of our own, base images made here
# (no registry is reachable), then the CPU image from deploy/Dockerfile.cpu.
#
#   bash scripts/containers.sh            # idempotent: what exists (images, the rootfs tarball) is kept
#   bash scripts/containers.sh --rebuild  # rebuild relayrl:0.1.0 now (it is rebuilt anyway when its sources changed)
#   bash scripts/containers.sh --clean    # remove every container, image and volume of this set-up
#
# Everything lives under $RELAYRL_CONTAINERS (default /var/tmp/relayrl-containers): containers.conf
# (runc: crun cannot run on this cgroup-v1 host; ulimits podman can set here), storage.conf (graph and
# run roots), netavark's networks, the debootstrap tarball. `env.sh` there exports the variables
# that point podman at it; the tests read the same directory.
#
# Base images (docs/deploying.md, "What was run here"):
#   localhost/debian:bookworm                    debootstrap --variant=minbase of Debian 12
#   docker.io/library/python:3.11.9-slim-bookworm a stand-in: Debian's Python 3.11 laid out as the
#                                                 official image lays out its own (in /usr/local, no
#                                                 /usr/bin/python3), with this machine's CA certificates
#   docker.io/library/redis:7.2.5-alpine         a stand-in: Debian's redis-server (7.0), uid 999 like the official image
# The torch CPU wheel: Dockerfile.cpu installs it from PyPI's CPU index by default, which is not
# reachable here; the build gets TORCH_PIP_ARGS pointing pip at this machine's own copy of the same
# wheel (/opt/wheels), served over HTTP on loopback for the length of the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${RELAYRL_CONTAINERS:-/var/tmp/relayrl-containers}
MIRROR=${RELAYRL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TORCH_WHEELS=${RELAYRL_TORCH_WHEELS:-/opt/wheels}
IMAGE=localhost/relayrl:0.1.0
mkdir -p "$DIR"/{storage,run,networks,tmp}

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "== installing podman, buildah, runc, debootstrap (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman buildah runc debootstrap uidmap slirp4netns fuse-overlayfs >/dev/null
fi
[ -x .venv/bin/podman-compose ] || .venv/bin/pip install -q "podman-compose==1.6.0"

cat > "$DIR/containers.conf" <<EOF
[containers]
# crun fails on this host ("cgroups in hybrid mode not supported"); without these limits set
# explicitly, runc's setrlimit is refused (nproc above 32768 breaks conmon)
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
tmp_dir = "$DIR/tmp"
[network]
network_config_dir = "$DIR/networks"
EOF
cat > "$DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$DIR/storage"
runroot = "$DIR/run"
EOF
cat > "$DIR/env.sh" <<EOF
export CONTAINERS_CONF="$DIR/containers.conf" CONTAINERS_STORAGE_CONF="$DIR/storage.conf" TMPDIR="$DIR/tmp"
EOF
# shellcheck disable=SC1091
source "$DIR/env.sh"

case "${1:-}" in
  --clean)
    podman rm -af -t 0 >/dev/null 2>&1 || true
    podman pod rm -af -t 0 >/dev/null 2>&1 || true
    podman system reset -f >/dev/null 2>&1 || true
    rm -rf "$DIR"
    echo "removed $DIR"
    exit 0 ;;
  --rebuild) podman rmi -f "$IMAGE" >/dev/null 2>&1 || true ;;
esac

t0=$SECONDS
if ! podman image exists localhost/debian:bookworm; then
  if [ ! -s "$DIR/debian-bookworm.tar" ]; then
    echo "== debootstrap Debian 12 (minbase) from $MIRROR"
    rm -rf "$DIR/rootfs"
    debootstrap --variant=minbase bookworm "$DIR/rootfs" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 \
      || { tail -20 "$DIR/debootstrap.log"; exit 1; }
    rm -rf "$DIR/rootfs/var/cache/apt/archives/"*.deb "$DIR/rootfs/var/lib/apt/lists/"*
    tar -C "$DIR/rootfs" -cf "$DIR/debian-bookworm.tar" .
    rm -rf "$DIR/rootfs"
  fi
  podman import -q "$DIR/debian-bookworm.tar" localhost/debian:bookworm >/dev/null
fi

CONTEXT=$(mktemp -d "$DIR/tmp/context.XXXXXX")
trap 'rm -rf "$CONTEXT"; [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true' EXIT
cp /usr/local/share/ca-certificates/*.crt "$CONTEXT/" 2>/dev/null || true
if ! podman image exists docker.io/library/python:3.11.9-slim-bookworm; then
  echo "== stand-in for python:3.11.9-slim-bookworm"
  podman build -q --pull=never --network host -f tests/containers/python-standin.Containerfile \
    -t docker.io/library/python:3.11.9-slim-bookworm "$CONTEXT" >/dev/null
fi
if ! podman image exists docker.io/library/redis:7.2.5-alpine; then
  echo "== stand-in for redis:7.2.5-alpine"
  podman build -q --pull=never --network host -f tests/containers/redis-standin.Containerfile \
    -t docker.io/library/redis:7.2.5-alpine "$CONTEXT" >/dev/null
fi

# The image is rebuilt whenever what it is built from changed (a label holds the hash of the
# Dockerfile and the build context: pyproject.toml, README.md, services/), so a machine that built
# it for an older tree never tests that tree's code.
SOURCE_HASH=$(cd "$ROOT" && find deploy/Dockerfile.cpu pyproject.toml README.md services -type f \
  -not -path '*/__pycache__/*' -not -path '*.egg-info/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if podman image exists "$IMAGE" && \
   [ "$(podman image inspect --format '{{index .Labels "relayrl.source"}}' "$IMAGE")" != "$SOURCE_HASH" ]; then
  echo "== $IMAGE was built from another tree: rebuilding it"
  podman rmi -f "$IMAGE" >/dev/null
fi
if ! podman image exists "$IMAGE"; then
  echo "== building $IMAGE from deploy/Dockerfile.cpu"
  PORT=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  .venv/bin/python -m http.server "$PORT" --bind 127.0.0.1 --directory "$TORCH_WHEELS" >/dev/null 2>&1 &
  SERVER=$!
  # the wheel PyTorch's CPU index serves (torch 2.13.0+cpu, which pip ranks above the CUDA build
  # of 2.13.0 on PyPI), from this machine's disk; its dependencies from PyPI
  podman build --pull=never --network host -f deploy/Dockerfile.cpu -t "$IMAGE" --label "relayrl.source=$SOURCE_HASH" \
    --build-arg "TORCH_PIP_ARGS=--find-links http://127.0.0.1:$PORT/" "$ROOT" >"$DIR/build.log" 2>&1 \
    || { tail -40 "$DIR/build.log"; exit 1; }
  kill "$SERVER"; SERVER=
fi
echo "containers ready in $((SECONDS - t0)) s: $(podman images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"
