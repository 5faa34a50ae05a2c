"""pyinfra inventory of the real fleet: every host the state file declares, named as the state names it and
reached at its declared address as its operator account (sudo for what needs root). The state's groups are
pyinfra groups, so `--limit spark-01` and `--limit nvfp4-fleet` work. `spark-state apply` hands pyinfra the same
inventory from inside the package (spark_state/shipped/inventory.py).

    pyinfra inventory/sparks.py deploys/serve.py
The state file is inventory/state.yaml, or $SPARK_STATE_FILE. A sudo password: pyinfra asks for it when sudo
does, or give it as host data (`--data _sudo_password=...` is visible in your shell history; prefer the prompt).
"""

from spark_state.desired.loader import load_state
from spark_state.inventory import group_hosts, real_hosts, state_path

_state = load_state(state_path()).state
sparks = real_hosts(_state)
globals().update(group_hosts(_state, sparks))  # never named `sparks` (desired.names.ALL_HOSTS_GROUP)
