#!/usr/bin/env bash
# Install what spark-state and its rehearsal fleet need on a Debian machine (as root), and the package in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(python3 python3-venv python3-pip debootstrap systemd-container docker-registry openssh-client openssl
              iproute2 ca-certificates tar gzip e2fsprogs util-linux coreutils)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "spark-state setup: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The product with its test and lint tools, and the rehearsal fleet (its own package: not in the product's wheel).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./rehearsal
