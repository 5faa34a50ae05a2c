"""Reconcile Sparks to the state file: `pyinfra inventory/sparks.py deploys/serve.py` (or inventory/sim.py).

DesiredState file: inventory/state.yaml, $SPARK_STATE_FILE, or `--data spark_state_file=PATH`.
Verification bench: `--data spark_bench=on|always|off` (on: after a change; default on) and
`--data spark_bench_fail=no` to report a missed expectation without failing the host.
"""

from spark_state.deploy.reconcile import serve_spark

serve_spark()
