"""The inventory `spark-state apply` hands to pyinfra when given none: every host the state file
($SPARK_STATE_FILE) declares, named as the state names it, reached at its declared address as its operator
account (sudo for what needs root); the state's groups are pyinfra groups (`--limit nvfp4-fleet`)."""

from spark_state.desired.loader import load_state
from spark_state.inventory import group_hosts, real_hosts, state_path

_state = load_state(state_path()).state
sparks = real_hosts(_state)
globals().update(group_hosts(_state, sparks))  # never named `sparks` (desired.names.ALL_HOSTS_GROUP)
