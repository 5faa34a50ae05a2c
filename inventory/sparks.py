"""pyinfra inventory of the real fleet: every host the state file declares, at its declared address.

    pyinfra inventory/sparks.py deploys/serve.py
The state file is inventory/state.yaml, or $SPARK_STATE_FILE.
"""

from spark_state.state.inventory import real_hosts, state_path
from spark_state.state.loader import load_state

sparks = real_hosts(load_state(state_path()).state)
