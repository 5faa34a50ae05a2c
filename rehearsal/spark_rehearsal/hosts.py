"""The rehearsal fleet as a pyinfra inventory: the state file's hosts mapped, in order, onto the simulated
Sparks of `spark-rehearsal up` (inventory/sim.py)."""

from __future__ import annotations

from spark_state.desired.model import DesiredState
from spark_state.errors import InventoryError
from spark_state.inventory import InventoryHost, ssh_data

from .fleet import FleetRecord
from .layout import Layout


def sim_hosts(state: DesiredState) -> list[InventoryHost]:
    record = FleetRecord.load(Layout.default())
    names = list(state.hosts)
    if len(record.hosts) < len(names):
        raise InventoryError(
            f"the state declares {len(names)} hosts but the rehearsal fleet has {len(record.hosts)}; "
            f"run `spark-rehearsal up {len(names)}`"
        )
    hosts = []
    for name, sim in zip(names, record.hosts, strict=False):
        data = ssh_data(state, name)
        data.update(
            {
                "ssh_hostname": sim.address,
                "ssh_user": record.operator,
                "ssh_port": 22,
                "ssh_key": record.ssh_key,
                "ssh_known_hosts_file": "/dev/null",
                "ssh_strict_host_key_checking": "no",
                "sim_host": sim.name,
                "_sudo": True,
            }
        )
        if sim.name in record.password_hosts:
            data["_sudo_password"] = record.sudo_password  # host data, as pyinfra takes it; never in the state file
        hosts.append((name, data))
    return hosts
