"""pyinfra inventory of the rehearsal fleet (`spark-state sim up N`): the state file's hosts, in order, on the
simulated Sparks. Same state file, same deploy, same checks as inventory/sparks.py.

    pyinfra inventory/sim.py deploys/serve.py
"""

from spark_state.sim.inventory import sim_hosts
from spark_state.state.inventory import state_path
from spark_state.state.loader import load_state

sparks = sim_hosts(load_state(state_path()).state)
