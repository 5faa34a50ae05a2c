#!/usr/bin/env bash
# Run the whole test suite (root, Debian): installs what it needs, checks lint, format and types, then pytest.
# The rehearsal-fleet tests boot simulated Sparks; the first run builds their root filesystems (about two
# minutes), later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The habits that keep the code as it is: lint, format and types, before any test runs.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
