"""pyinfra inventory of the rehearsal fleet (`spark-rehearsal up N`): the state file's hosts ($SPARK_STATE_FILE),
in order, on the simulated Sparks, as their operator account `nvidia` with sudo; the state's groups are pyinfra
groups here too. A file pyinfra runs (`spark-rehearsal inventory` prints its path), and what a checkout's
inventory/sim.py imports.

    spark-state apply STATE --inventory "$(spark-rehearsal inventory)"
"""

from spark_rehearsal.hosts import sim_hosts
from spark_state.desired.loader import load_state
from spark_state.inventory import group_hosts, state_path

_state = load_state(state_path()).state
sparks = sim_hosts(_state)
globals().update(group_hosts(_state, sparks))  # never named `sparks` (desired.names.ALL_HOSTS_GROUP)
