"""The rehearsal fleet's one error: it could not be set up, inspected or torn down. The rehearsal is not the
product: its errors stay out of spark_state.errors, and only its own CLI (cli.py) turns them into exit codes."""


class SimError(Exception):
    """The rehearsal fleet could not be set up, inspected or torn down."""
