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
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# The fast subset first (no fleet: a failure shows in two minutes): its timing tests alone, the rest on two
# workers, a file each; then the fleet modules in their two groups side by side, each on a fleet of its own
# (tests/conftest.py FLEET_GROUPS; the simulated Sparks mostly wait).
.venv/bin/python -m pytest -m "not fleet and timing"
.venv/bin/python -m pytest -m "not fleet and not timing" -n 2 --dist loadfile
exec .venv/bin/python -m pytest -m fleet -n 2 --dist loadgroup
