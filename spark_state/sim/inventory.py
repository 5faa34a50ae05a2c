"""The rehearsal fleet as a pyinfra inventory: the state file's hosts mapped, in order, onto the simulated
Sparks of `spark-state sim up` (inventory/sim.py)."""

from __future__ import annotations

from ..errors import InventoryError
from ..state.inventory import HostEntry, ssh_data
from ..state.model import State
from .fleet import FleetRecord
from .layout import Layout


def sim_hosts(state: State) -> list[HostEntry]:
    record = FleetRecord.load(Layout.default())
    names = list(state.hosts)
    if len(record.hosts) < len(names):
        raise InventoryError(
            f"the state declares {len(names)} hosts but the rehearsal fleet has {len(record.hosts)}; "
            f"run `spark-state sim up {len(names)}`"
        )
    entries = []
    for name, sim in zip(names, record.hosts):
        data = ssh_data(state, name)
        data.update({
            "ssh_user": "root", "ssh_port": 22, "ssh_key": record.ssh_key, "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no", "sim_host": sim.name,
        })  # fmt: skip
        entries.append((sim.address, data))
    return entries
