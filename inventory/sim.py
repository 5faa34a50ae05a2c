"""pyinfra inventory of the rehearsal fleet (`spark-rehearsal up N`): the state file's hosts, in order, on the
simulated Sparks, as their operator account `nvidia` with sudo. Same state file, same deploy, same checks as
inventory/sparks.py; the state's groups are pyinfra groups here too.

    pyinfra inventory/sim.py deploys/serve.py
The rehearsal package ships the same file (`spark-rehearsal inventory` prints its path) for use without a checkout.
"""

from spark_rehearsal.hosts import sim_hosts
from spark_state.desired.loader import load_state
from spark_state.inventory import group_hosts, state_path

_state = load_state(state_path()).state
sparks = sim_hosts(_state)
globals().update(group_hosts(_state, sparks))  # never named `sparks` (desired.names.ALL_HOSTS_GROUP)
