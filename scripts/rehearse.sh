#!/usr/bin/env bash
# The main job on the rehearsal fleet: set everything up, boot two simulated Sparks, and reconcile them to
# inventory/state.yaml with the real deploy (pull, download, build, units, health, verification bench).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export NGC_API_KEY=${NGC_API_KEY:-rehearsal-key}  # the rehearsal nvcr.io's NGC key (rehearsal/spark_rehearsal/registry.py): NIM pulls need it
.venv/bin/spark-state validate inventory/state.yaml
.venv/bin/spark-rehearsal up 2
# `spark-state apply` runs the deploy shipped in the package through pyinfra (`pyinfra inventory/sim.py
# deploys/serve.py` from a checkout is the same deploy).
.venv/bin/spark-state apply inventory/state.yaml --inventory inventory/sim.py -y
.venv/bin/spark-state apply inventory/state.yaml --inventory inventory/sim.py -y   # converged: changes nothing
echo
echo "The fleet is still up: try  .venv/bin/spark-state status inventory/state.yaml --inventory inventory/sim.py"
echo "                            .venv/bin/spark-state bench inventory/state.yaml --inventory inventory/sim.py"
echo "                       and  .venv/bin/spark-rehearsal down"
