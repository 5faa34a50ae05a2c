#!/usr/bin/env bash
# Run the whole test suite (root, Debian): installs what it needs, then pytest. The rehearsal-fleet tests
# boot simulated Sparks; the first run builds their root filesystems (about two minutes), later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
