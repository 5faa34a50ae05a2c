#!/usr/bin/env bash
# Install what spark-state and its rehearsal fleet need on a Debian machine (as root), and the package in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium draws the bench report in the suite's browser test; nodejs runs yaml-language-server for the schema test;
# dpkg-dev and gpg build the rehearsal fleet's signed package mirror.
APT_PACKAGES=(python3 python3-venv python3-pip debootstrap systemd-container docker-registry openssh-client openssl
              iproute2 ca-certificates tar gzip e2fsprogs util-linux coreutils chromium nodejs dpkg-dev gpg
              debian-archive-keyring)
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
if ! command -v npm >/dev/null; then  # Debian packages npm apart from nodejs (NodeSource's nodejs carries it)
  if [ "$(id -u)" -ne 0 ]; then
    echo "spark-state setup: need root to apt-get install npm" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The product with its test and lint tools, and the rehearsal fleet (its own package: not in the product's wheel).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./rehearsal
# The real yaml-language-server, as editors run it, for the schema test (tests/test_schema_in_editor.py).
YAML_LS=1.25.0
if ! grep -qs "\"version\": \"$YAML_LS\"" .venv/lsp/node_modules/yaml-language-server/package.json; then
  npm install --prefix .venv/lsp --no-audit --no-fund --silent "yaml-language-server@$YAML_LS"
fi
