"""The deploy `spark-state apply` hands to pyinfra (a file: pyinfra runs deploy files, not modules). The same as a
checkout's deploys/serve.py: reconcile each host of the inventory to the state file ($SPARK_STATE_FILE)."""

from spark_state.deploy.reconcile import serve_spark

serve_spark()
