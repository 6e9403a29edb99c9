#!/usr/bin/env bash
# Make a Docker Engine and the test stand-in images available for tests/integration/test_docker.py.
#
#   bash scripts/docker-setup.sh            # idempotent: reuses what is already there
#
# - installs Debian's docker.io and debootstrap when missing;
# - starts dockerd in the background when none answers (log: $DICOMKIT_TEST_CACHE/dockerd.log),
#   and then writes its PID to $DICOMKIT_TEST_CACHE/dockerd.started so the caller can stop it;
# - builds, once, the images a registry would give users (none is reachable in CI):
#     dicomkit-test/debian:bookworm   debootstrap --variant=minbase, docker import
#     dicomkit-test/orthanc:bookworm  Debian's orthanc + orthanc-dicomweb + orthanc-postgresql
#     dicomkit-test/postgres:bookworm Debian's postgresql-15, configured like the official image
#     dicomkit-test/python:bookworm   Debian's python3 + venv (base of compose/Dockerfile)
#   and a wheelhouse of the package's dependencies so the RIS image builds without PyPI;
# - builds the RIS image (dicomkit-test/ris:latest) through dicomkit itself.
# Exit status non-zero means the docker tests will skip (they print why).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${DICOMKIT_TEST_CACHE:-/var/cache/dicomkit-test}"
DEBIAN_IMAGE=dicomkit-test/debian:bookworm
ORTHANC_IMAGE=dicomkit-test/orthanc:bookworm
POSTGRES_IMAGE=dicomkit-test/postgres:bookworm
PYTHON_IMAGE=dicomkit-test/python:bookworm
RIS_IMAGE=dicomkit-test/ris:latest
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# The Python that has this package installed (scripts/test.sh makes .venv first).
PY="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

say() { echo "== docker-setup: $*"; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

$SUDO mkdir -p "$CACHE"
$SUDO chown "$(id -u)" "$CACHE" 2>/dev/null || true

# ---- packages -------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# Compose itself, to check that it recognises what dicomkit creates (Debian 12 ships v1).
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d stops the package from starting a system dockerd we would not control.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- the engine -----------------------------------------------------------------------------
if ! docker version >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    say "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd"
    exit 1
  fi
  say "no Docker Engine answers: starting dockerd (log: $CACHE/dockerd.log)"
  t0=$(date +%s)
  # Its own session, so the caller's Ctrl-C does not take it down mid-test.
  $SUDO setsid dockerd --pidfile "$CACHE/dockerd.pid" >"$CACHE/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker version >/dev/null 2>&1; then
    say "dockerd did not answer within 30 s; last log lines:"
    tail -n 15 "$CACHE/dockerd.log" || true
    exit 1
  fi
  cp "$CACHE/dockerd.pid" "$CACHE/dockerd.started"
  say "dockerd (pid $(cat "$CACHE/dockerd.started")) answers after $(elapsed "$t0")"
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# ---- stand-in images (built once, reused) ---------------------------------------------------
if ! have_image "$DEBIAN_IMAGE"; then
  t0=$(date +%s)
  root="$CACHE/rootfs-bookworm"
  $SUDO rm -rf "$root"
  say "debootstrap --variant=minbase bookworm (about 30 s)"
  $SUDO debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 15 "$CACHE/debootstrap.log"; exit 1; }
  $SUDO tar -C "$root" -c . | docker import - "$DEBIAN_IMAGE" >/dev/null
  $SUDO rm -rf "$root"
  say "$DEBIAN_IMAGE built in $(elapsed "$t0")"
fi
# A stand-in is rebuilt when its folder changed (a label holds the folder's hash).
folder_hash() { (cd "scripts/docker-images/$1" && sha256sum -- * | sha256sum | cut -c1-16); }
image_hash() { docker image inspect --format '{{index .Config.Labels "org.dicomkit.stand-in"}}' "$1" 2>/dev/null || true; }
for pair in "orthanc:$ORTHANC_IMAGE" "python:$PYTHON_IMAGE" "postgres:$POSTGRES_IMAGE"; do
  dir="${pair%%:*}"
  image="${pair#*:}"
  want=$(folder_hash "$dir")
  if [ "$(image_hash "$image")" != "$want" ]; then
    t0=$(date +%s)
    say "building $image from scripts/docker-images/$dir"
    docker build -q --network host --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" -t "$image" \
      --label "org.dicomkit.stand-in=$want" \
      "scripts/docker-images/$dir" >"$CACHE/build-$dir.log" 2>&1 \
      || { tail -n 15 "$CACHE/build-$dir.log"; exit 1; }
    say "$image built in $(elapsed "$t0")"
  fi
done

# ---- wheels for the RIS image (the build container cannot reach PyPI here) -----------------
wheels="$CACHE/wheels"
stamp="$wheels/.pyproject.sha256"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  t0=$(date +%s)
  say "collecting dependency wheels in $wheels"
  rm -rf "$wheels"
  mkdir -p "$wheels"
  $PY -m pip wheel -q -w "$wheels" . 'setuptools>=68' wheel >"$CACHE/pip-wheel.log" 2>&1 \
    || { tail -n 15 "$CACHE/pip-wheel.log"; rm -rf "$wheels"; exit 1; }
  rm -f "$wheels"/dicomkit-*.whl
  echo "$want" > "$stamp"
  say "wheels ready in $(elapsed "$t0")"
fi

# ---- the RIS image, built by dicomkit itself (rebuilt only when the sources changed) --------
t0=$(date +%s)
DICOMKIT_RIS_BASE_IMAGE="$PYTHON_IMAGE" DICOMKIT_WHEELHOUSE="$wheels" $PY - "$RIS_IMAGE" <<'EOF'
import sys

from dicomkit.config import LabConfig
from dicomkit.engines.compose import load_compose
from dicomkit.engines.docker_client import connect
from dicomkit.engines.docker_images import build_ris_image

ris = load_compose(LabConfig(ris_image=sys.argv[1])).services["ris"]
build_ris_image(connect(), ris.image, ris.build, lambda m: print("   ", m))
EOF
say "$RIS_IMAGE ready ($(elapsed "$t0"))"
say "done: docker tests use $ORTHANC_IMAGE, $POSTGRES_IMAGE, $PYTHON_IMAGE, $RIS_IMAGE"
