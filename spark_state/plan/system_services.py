"""Daemons a Spark runs from its distribution's packages beside the served models, as the state configures them:
earlyoom on every host (fleet.memory_guard); with `monitoring:`, the node exporter on every host and Prometheus
on the monitoring host. Each is a package, its systemd unit and the files spark-state writes for it.

earlyoom reads EARLYOOM_ARGS from /etc/default/earlyoom (the unit Debian and Ubuntu ship:
`EnvironmentFile=-/etc/default/earlyoom`, `ExecStart=/usr/bin/earlyoom $EARLYOOM_ARGS`). Options as earlyoom
1.7's manual gives them (the version in Debian 12 and Ubuntu 24.04, under DGX OS 7):
  -M SIZE[,KILL_SIZE]  available memory minimum in KiB: SIGTERM at or below SIZE, SIGKILL at or below KILL_SIZE
                       (default SIZE/2); "if you pass both -M and -m, the lower value is used", so -M below
                       -m's default 10 % decides alone (-m 100 is refused: "exceeds limit 99")
  -s PERCENT           free swap minimum; with no swap, free swap counts as 0 % and memory alone decides
  --avoid REGEX        process names (comm) to spare: 300 is taken off their oom_score
  -r SECONDS           how often it reports memory in the journal

The node exporter and Prometheus read `ARGS` from /etc/default/prometheus-node-exporter and /etc/default/prometheus
the same way (`ExecStart=/usr/bin/prometheus-node-exporter $ARGS`, `ExecStart=/usr/bin/prometheus $ARGS` in the
packages' units); Prometheus reads its scrape configuration from /etc/prometheus/prometheus.yml, checked with the
package's `promtool check config` before it replaces the one in use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..desired.model import DesiredState, PytorchService, host_services
from ..desired.names import NODE_EXPORTER_PORT, TEXTFILE_DIR
from ..stacks import STACKS, trtllm

EARLYOOM_DEFAULTS = "/etc/default/earlyoom"
NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"
PROMETHEUS_DEFAULTS = "/etc/default/prometheus"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
# What keeps the host reachable and its containers alive: sshd, systemd and its helpers, docker and containerd
# (their shims too: comm is cut at 15 characters, "containerd-shim"), earlyoom itself. Names as /proc/PID/comm.
SPARED = r"^(sshd|systemd|systemd-.*|dockerd|containerd|containerd-shim|docker-proxy|earlyoom)$"
WRITTEN_BY = "# Written by spark-state ({}); a deploy puts it back when it differs.\n"


@dataclass(frozen=True)
class SystemFile:
    path: str
    text: str
    check: tuple[str, ...] = ()  # a command that must accept the new file first; "{}" stands for its path


@dataclass(frozen=True)
class BenchMetricsPlan:
    """Where a host's last verification bench is written for the node exporter's textfile collector, and each
    service's labels there."""

    path: str
    labels: dict[str, dict[str, str]]  # service → service, stack, model


@dataclass(frozen=True)
class SystemServicePlan:
    """One daemon from a package: installed, its files exactly as planned (mode 644), enabled and running,
    restarted when one of them changed."""

    name: str  # as plan, drift and status say it
    package: str
    unit: str
    files: tuple[SystemFile, ...]
    summary: str  # what it does, in a line of `spark-state plan`


# Each word must read the same to the three that parse it: systemd's EnvironmentFile= (quotes removed), systemd's
# split of `$ARGS` in ExecStart= (at whitespace, quotes removed) and /bin/sh sourcing the file for an init
# script. Words without whitespace, quotes, backslashes or `$NAME` need no quoting in any of them.
_PLAIN_WORD = re.compile(r"^(?:[^\s'\"\\$]|\$(?![A-Za-z_{]))+$")


def _defaults_file(path: str, variable: str, words: list[str], why: str) -> SystemFile:
    assert all(_PLAIN_WORD.match(word) for word in words), words
    return SystemFile(path, WRITTEN_BY.format(why) + f'{variable}="{" ".join(words)}"\n')


def earlyoom_args(available_below_gib: float) -> list[str]:
    return ["-M", str(round(available_below_gib * 2**20)), "--avoid", SPARED, "-r", "3600"]


def plan_system_services(
    state: DesiredState, host: str, addresses: Mapping[str, str] | None = None
) -> tuple[SystemServicePlan, ...]:
    """The daemons `host` runs. `addresses`: where the monitoring host reaches each host (the inventory's
    addresses; the state's when not given)."""
    planned = []
    guard = state.fleet.memory_guard
    if guard.enabled:
        planned.append(
            SystemServicePlan(
                "earlyoom",
                "earlyoom",
                "earlyoom.service",
                (
                    _defaults_file(
                        EARLYOOM_DEFAULTS,
                        "EARLYOOM_ARGS",
                        earlyoom_args(guard.available_below_gib),
                        "fleet.memory_guard",
                    ),
                ),
                f"ends the process with the highest oom_score below {guard.available_below_gib:g} GiB available "
                "(sparing sshd, systemd and docker)",
            )
        )
    monitoring = state.monitoring
    if monitoring is None:
        return tuple(planned)
    args = [f"--web.listen-address=:{NODE_EXPORTER_PORT}", f"--collector.textfile.directory={TEXTFILE_DIR}"]
    planned.append(
        SystemServicePlan(
            "node exporter",
            "prometheus-node-exporter",
            "prometheus-node-exporter.service",
            (_defaults_file(NODE_EXPORTER_DEFAULTS, "ARGS", args, "monitoring"),),
            f"host metrics on :{NODE_EXPORTER_PORT}, and spark-state's bench results from {TEXTFILE_DIR}",
        )
    )
    if host == monitoring.host:
        args = [
            f"--config.file={PROMETHEUS_CONFIG}",
            f"--web.listen-address=:{monitoring.port}",
            f"--storage.tsdb.retention.time={monitoring.retention_days}d",
        ]
        config = SystemFile(
            PROMETHEUS_CONFIG,
            prometheus_config(state, addresses or {}),
            ("promtool", "check", "config", "{}"),
        )
        planned.append(
            SystemServicePlan(
                "prometheus",
                "prometheus",
                "prometheus.service",
                (_defaults_file(PROMETHEUS_DEFAULTS, "ARGS", args, "monitoring"), config),
                f"scrapes every service, every host's node exporter and itself every "
                f"{monitoring.scrape_interval_s} s on :{monitoring.port}",
            )
        )
    return tuple(planned)


def scraped_path(state: DesiredState, service: str) -> str | None:
    """Where Prometheus reads a service's metrics (None: its server serves none in Prometheus' format)."""
    svc = state.services[service]
    if isinstance(svc, PytorchService) and not trtllm.served_options(svc, scraped=True).get("return_perf_metrics"):
        return None  # the options it reads turn its Prometheus text off
    return STACKS[svc.stack].metrics_path


def plan_bench_metrics(state: DesiredState, host: str) -> BenchMetricsPlan | None:
    if state.monitoring is None:
        return None
    labels = {
        s: {"service": s, "stack": state.services[s].stack, "model": model_label(state, s)}
        for s in host_services(state, host)
        if s in state.services
    }
    return BenchMetricsPlan(f"{TEXTFILE_DIR}/spark_state_bench.prom", labels)


def model_label(state: DesiredState, service: str) -> str:
    """What a service serves, as its metrics are labelled: its checkpoint (an engine's), or a NIM's image."""
    svc = state.services[service]
    checkpoint = getattr(svc, "checkpoint", None)
    engine = getattr(svc, "engine", None)
    if engine:
        checkpoint = state.engines[engine].checkpoint if engine in state.engines else None
    return checkpoint or str(getattr(svc, "container", "") or service)


def prometheus_config(state: DesiredState, addresses: Mapping[str, str]) -> str:
    """The scrape configuration: Prometheus itself, each host's node exporter and each service's metrics path,
    labelled host, service, stack and model. JSON is YAML: one spelling, every string quoted."""
    assert state.monitoring is not None
    monitoring = state.monitoring

    def reach(host: str) -> str:
        return addresses.get(host) or state.hosts[host].address

    services = []
    for host in state.hosts:
        for service in host_services(state, host):
            path = scraped_path(state, service) if service in state.services else None
            if path is None:
                continue
            labels = {
                "host": host,
                "service": service,
                "stack": state.services[service].stack,
                "model": model_label(state, service),
                "__metrics_path__": path,
            }
            services.append({"targets": [f"{reach(host)}:{state.services[service].port}"], "labels": labels})
    document = {
        "global": {"scrape_interval": f"{monitoring.scrape_interval_s}s"},
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"localhost:{monitoring.port}"], "labels": {"host": monitoring.host}}],
            },
            {
                "job_name": "node",
                "static_configs": [
                    {"targets": [f"{reach(host)}:{NODE_EXPORTER_PORT}"], "labels": {"host": host}}
                    for host in state.hosts
                ],
            },
            {"job_name": "llm", "static_configs": services},
        ],
    }
    return WRITTEN_BY.format("monitoring") + json.dumps(document, indent=2) + "\n"
