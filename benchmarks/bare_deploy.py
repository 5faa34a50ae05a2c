"""The bare baseline for benchmarks/deploy_speed.py: a pyinfra deploy that reads one fact and changes nothing."""

from pyinfra import host
from pyinfra.facts.server import Hostname

host.get_fact(Hostname)
