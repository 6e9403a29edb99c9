#!/usr/bin/env bash
# Install what the tests need (Debian packages, a venv with the dev extras) and run every check.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Real peers: Orthanc (+ DICOMweb plugin) and DCMTK; dicom3tools for dciodvfy, the IOD checker;
# Chromium renders the lab's pages headless (tests/integration/test_pages_offline.py).
# Docker is set up by scripts/docker-setup.sh.
missing=()
for pkg in orthanc orthanc-dicomweb orthanc-postgresql postgresql dcmtk dicom3tools chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d keeps Debian's orthanc service from starting on 4242/8042 during install.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

if [ -f scripts/docker-setup.sh ]; then
  # Best effort: when no Docker Engine can run, the docker tests skip and say why.
  # A dockerd that setup started (its PID in dockerd.started) is stopped again on exit.
  DOCKERD_STARTED="${DICOMKIT_TEST_CACHE:-/var/cache/dicomkit-test}/dockerd.started"
  stop_dockerd() {
    [ -f "$DOCKERD_STARTED" ] || return 0
    pid=$(cat "$DOCKERD_STARTED")
    $SUDO kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    $SUDO rm -f "$DOCKERD_STARTED"
  }
  rm -f "$DOCKERD_STARTED"  # only a dockerd started by this run is ours to stop
  trap stop_dockerd EXIT
  bash scripts/docker-setup.sh || echo "== docker setup failed: docker-engine tests will skip"
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy dicomkit
echo "== pytest"
.venv/bin/pytest -q -ra "$@"
