"""What a state's names become on a host: container, unit and env-file names. They live here, in one place, so
the plan derives them and validation can refuse two entries that would share one (a service called
`build-llama` and the build container of engine `llama` would both be `spark-state-build-llama`)."""

from __future__ import annotations

import hashlib

UNIT_PREFIX = "spark-state-"
# Debian's and Ubuntu's prometheus-node-exporter: its port, and the directory its textfile collector reads
# (the packages' default --collector.textfile.directory); spark-state's bench results go there.
NODE_EXPORTER_PORT = 9100
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def service_container(service: str) -> str:
    return f"{UNIT_PREFIX}{service}"


def service_unit(service: str) -> str:
    return f"{UNIT_PREFIX}{service}.service"


def convert_container(engine: str) -> str:
    return f"{UNIT_PREFIX}convert-{engine}"


def build_container(engine: str) -> str:
    return f"{UNIT_PREFIX}build-{engine}"


def fetch_container(checkpoint: str) -> str:
    return f"{UNIT_PREFIX}fetch-{checkpoint}"


def service_env_file(secrets_dir: str, service: str) -> str:
    return f"{secrets_dir}/{service}.env"


def service_options_file(root: str, service: str, text: str) -> str:
    """A service's LLM API options on the host, named by their content (a change is a new file)."""
    return f"{root}/services/{service}/llm-api-options.{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"


def checkpoint_env_file(secrets_dir: str, checkpoint: str) -> str:
    return f"{secrets_dir}/checkpoint-{checkpoint}.env"


def claims(section: str, name: str, secrets_dir: str) -> list[tuple[str, str]]:
    """(what, host name) pairs an entry of `section` takes on every host it lands on."""
    if section == "services":
        return [("container", service_container(name)), ("env file", service_env_file(secrets_dir, name))]
    if section == "engines":
        return [("container", convert_container(name)), ("container", build_container(name))]
    if section == "checkpoints":
        return [("container", fetch_container(name)), ("env file", checkpoint_env_file(secrets_dir, name))]
    return []


# The pyinfra group of every host in spark-state's inventories (inventory/sparks.py, inventory/sim.py): a state
# group of this name would replace it there, and hosts in no group would drop out of deploy, drift and status.
ALL_HOSTS_GROUP = "sparks"
