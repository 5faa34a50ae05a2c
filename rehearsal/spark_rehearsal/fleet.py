"""`spark-rehearsal up|down|status`: N simulated Sparks, each a systemd-nspawn machine booted with systemd as
PID 1 in its own network namespace on a bridge, with sshd, docker and its own disk (an overlay upper layer and
a docker directory). The registry and the hub listen on the bridge's gateway address."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from . import apt_repo, images, ngc_auth, packages, registry
from .errors import SimError
from .layout import HUB_PORT, Layout, host_name
from .rootfs import OPERATOR, OPERATOR_UID, ensure_rootfs

GPU_DIR = "etc/spark-sim"
UNIFIED_MEMORY_KIB = int(121.7 * 1024 * 1024)  # the Spark's 121.7 GiB of unified memory
SPARK_DATA_DIR = "/var/lib/spark-state"
SPARK_DISK_GB = 3700
REQUIRED_TOOLS = (
    "debootstrap",
    "systemd-nspawn",
    "ip",
    "nsenter",
    "ssh",
    "ssh-keygen",
    "openssl",
    "docker-registry",
    "mount",
    "umount",
    "tar",
    "mkfs.ext4",
    "chroot",
    "apt-get",
    "dpkg-scanpackages",
    "gpg",
    "gpgconf",
)


@dataclass
class SimHost:
    name: str
    address: str
    netns: str
    veth: str
    pid: int
    dir: str


@dataclass
class FleetRecord:
    hosts: list[SimHost]
    ssh_key: str
    hub_endpoint: str
    registry_pid: int
    hub_pid: int
    started: float
    operator: str = OPERATOR
    sudo_password: str = ""  # of the hosts in password_hosts; this file is root's alone (0600)
    password_hosts: tuple[str, ...] = ()  # sudo asks these hosts' operator for a password; the others do not
    docker_hosts: tuple[str, ...] = ()  # the operator may use docker without sudo here only (the docker group)
    door_pid: int = 0  # nvcr.io's token-auth front (ngc_auth.py) before the registry
    apt_pid: int = 0  # the package mirror (apt_repo.py)

    @classmethod
    def load(cls, layout: Layout) -> FleetRecord:
        try:
            data = json.loads(layout.fleet_file.read_text())
        except FileNotFoundError:
            raise SimError(
                f"no rehearsal fleet is up ({layout.fleet_file} missing); run `spark-rehearsal up N`"
            ) from None
        data["hosts"] = [SimHost(**h) for h in data["hosts"]]
        for key in ("password_hosts", "docker_hosts"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)

    def save(self, layout: Layout) -> None:
        layout.fleet_file.touch(mode=0o600)
        layout.fleet_file.chmod(0o600)
        layout.fleet_file.write_text(json.dumps(asdict(self), indent=2))


def require_root() -> None:
    if sys.platform != "linux":
        raise SimError("the rehearsal fleet needs Linux (network namespaces, overlayfs, systemd-nspawn)")
    if os.geteuid() != 0:
        raise SimError("the rehearsal fleet needs root: it creates network namespaces, mounts and machines")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise SimError(
            f"missing tools: {', '.join(missing)}; on Debian: apt-get install debootstrap systemd-container "
            "docker-registry openssh-client openssl iproute2 dpkg-dev gpg"
        )


def _run(argv: list[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin)
    if check and proc.returncode != 0:
        raise SimError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop(pid: int, timeout: float) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_port(address: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if port != 22 or sock.recv(4).startswith(b"SSH"):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def init_pid(host: SimHost) -> int:
    """The host's PID 1 (systemd), seen from here: the child of systemd-nspawn, itself the machine supervisor's
    child (spark_rehearsal.machine), which starts it again after a reboot."""
    pid = host.pid
    for _ in range(2):
        children = _children(pid)
        if not children:
            raise SimError(f"{host.name} has no running machine under pid {host.pid} (rebooting, or down)")
        pid = children[0]
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "systemd-nspawn":
                return pid
        except OSError as exc:
            raise SimError(f"{host.name}: pid {pid} vanished: {exc}") from exc
    return pid


def host_exec(host: SimHost, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command inside the simulated host (its mount, PID, network, UTS and IPC namespaces)."""
    pid = init_pid(host)
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- up


def up(count: int, layout: Layout | None = None, log=print) -> FleetRecord:
    if not 1 <= count <= 64:
        raise SimError("a rehearsal fleet has 1 to 64 hosts")
    require_root()
    layout = layout or Layout.default()
    down(layout, log=lambda *_: None)  # whatever a crash left behind goes first
    started = time.monotonic()
    with _cache_lock(layout):  # fleets in other slots, starting now, build the shared caches once
        host_root = ensure_rootfs(layout, "host", log)
        image_root = ensure_rootfs(layout, "image", log)
        apt = apt_repo.ensure_repo(layout, host_root, log)
        _ensure_ssh_key(layout)
        ca_crt, _, _ = registry.ensure_certificates(layout)
    layout.fleet.mkdir(parents=True, exist_ok=True)

    _run(["ip", "link", "add", layout.bridge, "type", "bridge"])
    _run(["ip", "addr", "add", f"{layout.gateway}/24", "dev", layout.bridge])
    _run(["ip", "link", "set", layout.bridge, "up"])

    registry_pid = _spawn(registry.registry_command(layout), layout.fleet / "registry.log")
    door_argv, door_env = registry.door_command(layout)
    door_pid = _spawn(door_argv, layout.fleet / "ngc-auth.log", door_env)
    hub_pid = _spawn(
        [sys.executable, "-m", "spark_rehearsal.hub", "--host", layout.gateway, "--port", str(HUB_PORT)],
        layout.fleet / "hub.log",
    )
    apt_pid = _spawn(apt_repo.serve_command(apt, layout.gateway), layout.fleet / "apt.log")
    # Both sudo paths are exercised: the second host asks its operator for a password, the others do not; only
    # the first lets the operator use docker without sudo.
    names = [host_name(i) for i in range(count)]
    record = FleetRecord(
        [],
        str(layout.ssh_key),
        f"http://{layout.gateway}:{HUB_PORT}",
        registry_pid,
        hub_pid,
        time.time(),
        sudo_password=secrets.token_urlsafe(12),
        password_hosts=tuple(names[1:2]),
        docker_hosts=tuple(names[:1]),
        door_pid=door_pid,
        apt_pid=apt_pid,
    )
    record.save(layout)
    backend_host, _, backend_port = layout.backend.partition(":")
    if not all(
        _wait_port(a, p, 15)
        for a, p in (
            (layout.gateway, 443),
            (layout.gateway, HUB_PORT),
            (layout.gateway, apt_repo.APT_PORT),
            (backend_host, int(backend_port)),
        )
    ):
        raise SimError(
            f"registry, its nvcr.io door, the hub or the package mirror did not start; see {layout.fleet}/*.log"
        )
    with _cache_lock(layout):  # the layer cache is shared
        images.publish_images(layout, image_root, f"http://{layout.backend}", ca_crt, log)

    for index in range(count):
        record.hosts.append(_boot_host(layout, index, host_root, ca_crt, record, apt))
        record.save(layout)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(wait_ready, record.hosts))
    log(
        f"{count} simulated Sparks up in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{h.name}={h.address}" for h in record.hosts)
    )
    return record


@contextmanager
def _cache_lock(layout: Layout) -> Iterator[None]:
    layout.cache.mkdir(parents=True, exist_ok=True)
    with open(layout.cache_lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_ssh_key(layout: Layout) -> None:
    if layout.ssh_key.exists():
        return
    layout.ssh_key.parent.mkdir(parents=True, exist_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "spark-state-sim", "-f", str(layout.ssh_key)])


def gpu_description() -> dict[str, object]:
    from .standins.gpu import DEFAULT_GPU

    return dict(DEFAULT_GPU)


# No boot id here: systemd-nspawn already mounts a random one over /proc/sys/kernel/random/boot_id at each start
# of the machine (src/nspawn/nspawn.c, setup_boot_id; seen here in the machine's mountinfo), and a reboot starts
# nspawn again, so every simulated boot gets its own, as proc(5) documents for a real kernel. A second bind over
# that mount fails (ENOENT: its source is an unlinked file) and failed this unit at every boot.
PROC_UNIT = """[Unit]
Description=Rehearsal fleet: the Spark's 121.7 GiB unified memory in /proc/meminfo and its kernel release in /proc/sys
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /etc/spark-sim/meminfo /proc/meminfo
ExecStart=/bin/mount --bind /etc/spark-sim/osrelease /proc/sys/kernel/osrelease

[Install]
WantedBy=sysinit.target
"""


def _meminfo() -> str:
    total = UNIFIED_MEMORY_KIB
    free = total - 3 * 1024 * 1024
    return (
        f"MemTotal:       {total} kB\nMemFree:        {free} kB\nMemAvailable:   {free + 1024 * 1024} kB\n"
        f"Buffers:           10240 kB\nCached:          {1024 * 1024} kB\nSwapCached:            0 kB\n"
        "SwapTotal:             0 kB\nSwapFree:              0 kB\n"
    )


def _boot_host(layout: Layout, index: int, lower: Path, ca_crt: Path, record: FleetRecord, apt: Path) -> SimHost:
    name, address = host_name(index), layout.host_address(index)
    netns, veth = f"{layout.netns_prefix}{name}", f"{layout.veth_prefix}{index + 1:02d}"
    d = layout.host_dir(name)
    for sub in ("upper", "work", "merged", "docker"):
        (d / sub).mkdir(parents=True, exist_ok=True)

    _run(["ip", "netns", "add", netns])
    _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    _run(["ip", "link", "set", veth, "master", layout.bridge, "up"])
    for argv in (
        ["addr", "add", f"{address}/24", "dev", "eth0"],
        ["link", "set", "eth0", "up"],
        ["link", "set", "lo", "up"],
        ["route", "add", "default", "via", layout.gateway],
    ):
        _run(["ip", "-n", netns, *argv])
    # /proc/sys is read-only inside the machine; docker only needs forwarding already on.
    _run(["nsenter", f"--net=/run/netns/{netns}", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])

    merged = d / "merged"
    _run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={d / 'upper'},workdir={d / 'work'}",
            str(merged),
        ]
    )
    _personalise(merged, name, address, ca_crt, layout, record)
    apt_repo.install_on_host(merged, apt, layout.gateway)

    disk = _data_disk(d)
    argv = [
        sys.executable,
        "-m",
        "spark_rehearsal.machine",  # restarts nspawn when the machine reboots itself
        "systemd-nspawn",
        "-b",
        "-D",
        str(merged),
        "-M",
        layout.machine_name(index),
        f"--hostname={name}",
        f"--network-namespace-path=/run/netns/{netns}",
        "--register=no",
        "--keep-unit",
        "--console=read-only",
        "--capability=all",
        "--resolv-conf=off",
        "--timezone=off",
        "--system-call-filter=add_key keyctl request_key bpf",
        f"--bind={d / 'docker'}:/var/lib/docker",
        f"--bind={disk}:{SPARK_DATA_DIR}",
    ]
    env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
    pid = _spawn(argv, d / "console.log", env)
    return SimHost(name, address, netns, veth, pid, str(d))


def _data_disk(host_dir: Path) -> Path:
    """A Spark-sized disk for artifacts (3.7 TB, as shipped): a sparse ext4 image, loop-mounted, so engines and
    checkpoints survive a reboot and `df` says what a Spark says. Few inodes (-T largefile4) and no background
    inode-table zeroing (noinit_itable) keep it at tens of MB on this machine's disk."""
    image, mountpoint = host_dir / "disk.img", host_dir / "disk"
    mountpoint.mkdir(exist_ok=True)
    if not image.exists():
        with open(image, "wb") as f:
            f.truncate(SPARK_DISK_GB * 10**9)
        _run(
            [
                "mkfs.ext4",
                "-F",
                "-q",
                "-m",
                "0",
                "-T",
                "largefile4",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
                str(image),
            ]
        )
    _run(["mount", "-o", "loop,noinit_itable", str(image), str(mountpoint)])
    return mountpoint


def _personalise(root: Path, name: str, address: str, ca_crt: Path, layout: Layout, record: FleetRecord) -> None:
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    registries = " ".join(ngc_auth.door_names())
    (root / "etc/hosts").write_text(
        f"127.0.0.1 localhost\n{address} {name}\n{layout.gateway} {registries}\n"
        "::1 localhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/environment").write_text(f"HF_ENDPOINT={record.hub_endpoint}\nHF_HUB_DISABLE_TELEMETRY=1\n")
    _run(["ssh-keygen", "-A", "-f", str(root)])
    _operator(root, name, layout, record)
    # docker trusts a registry's CA from certs.d/HOST/ca.crt, except Docker Hub's, which it checks against the
    # system's roots only (moby registry/service_v2.go: tlsconfig.ServerDefault() for the index): the CA goes there
    # too, as update-ca-certificates would put it.
    for served in ngc_auth.REGISTRIES:
        certs = root / "etc/docker/certs.d" / served.host
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(ca_crt, certs / "ca.crt")
    local_ca = root / "usr/local/share/ca-certificates/spark-rehearsal.crt"
    local_ca.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca_crt, local_ca)
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    if ca_crt.read_text() not in bundle.read_text():
        with open(bundle, "a") as f:
            f.write(ca_crt.read_text())
    # NVIDIA's driver userland, as stand-ins: nvidia-smi, the container runtime hook, and the GPU they describe.
    site = root / "usr/local/lib/python3.11/dist-packages" / images.STANDIN_PACKAGE
    site.mkdir(parents=True, exist_ok=True)
    for source in images.STANDINS_DIR.glob("*.py"):
        shutil.copy(source, site / source.name)
    for command, module in (("nvidia-smi", "nvidia_smi"), ("nvidia-container-runtime-hook", "runtime_hook")):
        target = root / "usr/bin" / command
        target.write_text(images.PY_WRAPPER.format(package=images.STANDIN_PACKAGE, module=module))
        target.chmod(0o755)
    (root / GPU_DIR).mkdir(parents=True, exist_ok=True)
    (root / GPU_DIR / "gpu.json").write_text(json.dumps(gpu_description(), indent=2) + "\n")
    # The Spark's unified memory where tools read it: a bind over /proc/meminfo, made at boot (as lxcfs does).
    (root / GPU_DIR / "meminfo").write_text(_meminfo())
    # The kernel release the host reports (`spark-rehearsal upgrade --kernel` rewrites it in place, under the bind).
    (root / GPU_DIR / "osrelease").write_text(os.uname().release + "\n")
    packages.record_installed(root, gpu_description(), os.uname().release)
    unit = root / "etc/systemd/system/spark-sim-proc.service"
    unit.write_text(PROC_UNIT)
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).unlink(missing_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")


def _operator(root: Path, name: str, layout: Layout, record: FleetRecord) -> None:
    """The operator logs in with the fleet's key and uses sudo: without a password, or with one on the hosts in
    record.password_hosts (Debian's `%sudo ALL=(ALL:ALL) ALL`); in the docker group only on record.docker_hosts."""
    ssh_dir = root / "home" / record.operator / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(f"{layout.ssh_key}.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, OPERATOR_UID, OPERATOR_UID)
    sudoers = root / "etc/sudoers.d/spark-operator"
    if name in record.password_hosts:
        hashed = _run(["openssl", "passwd", "-6", "-stdin"], stdin=record.sudo_password).stdout.strip()
        _run(["chroot", str(root), "chpasswd", "--encrypted"], stdin=f"{record.operator}:{hashed}\n")
        sudoers.unlink(missing_ok=True)
    else:
        sudoers.write_text(f"{record.operator} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
    if name in record.docker_hosts:
        _run(["chroot", str(root), "usermod", "--append", "--groups", "docker", record.operator])


def wait_ready(host: SimHost, timeout: float = 60) -> None:
    """Until the machine answers SSH and its docker is active (after boot, or a reboot)."""
    if not _wait_port(host.address, 22, timeout):
        raise SimError(f"{host.name} ({host.address}) did not answer SSH; see {host.dir}/console.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = host_exec(host, ["systemctl", "is-active", "docker"])
        if proc.stdout.strip() == "active":
            check_proc_binds(host)
            return
        if proc.stdout.strip() == "failed":
            host_exec(host, ["sh", "-c", "systemctl reset-failed docker.service docker.socket; systemctl start docker"])
        time.sleep(0.3)
    raise SimError(f"docker did not become active on {host.name}; see `journalctl -u docker` there")


PROC_BINDS = {"/proc/meminfo": f"/{GPU_DIR}/meminfo", "/proc/sys/kernel/osrelease": f"/{GPU_DIR}/osrelease"}


def check_proc_binds(host: SimHost) -> None:
    """The host reads the Spark's memory and kernel release where tools read them (spark-sim-proc.service's
    binds), or the binds are made again once; a host that still reads this machine's own fails here, loudly,
    rather than letting a test or a deploy read figures no Spark has."""
    compare = " && ".join(f"cmp -s {seen} {ours}" for seen, ours in PROC_BINDS.items())
    if host_exec(host, ["sh", "-c", compare]).returncode == 0:
        return
    host_exec(host, ["systemctl", "restart", "spark-sim-proc.service"])
    if host_exec(host, ["sh", "-c", compare]).returncode == 0:
        return
    said = host_exec(
        host, ["sh", "-c", "systemctl status --no-pager spark-sim-proc.service; grep /proc /proc/self/mountinfo"]
    )
    raise SimError(f"{host.name} does not read its simulated /proc files:\n{said.stdout[-2500:]}")


# --------------------------------------------------------------------------- down


def down(layout: Layout | None = None, log=print) -> list[str]:
    """Stop every simulated host and service and remove every trace; returns what it removed."""
    layout = layout or Layout.default()
    removed: list[str] = []
    record = None
    if layout.fleet_file.exists():
        try:
            record = FleetRecord.load(layout)
        except (SimError, ValueError, TypeError):
            record = None
    pids = [h.pid for h in record.hosts] if record else []
    pids += _stray_nspawn_pids(layout)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda p: _stop(p, 20), set(pids)))
    removed += [f"machine pid {p}" for p in set(pids)]
    for pid in (
        [record.registry_pid, record.hub_pid, record.door_pid, record.apt_pid] if record else []
    ) + _stray_service_pids(layout):
        if _alive(pid):
            _stop(pid, 5)
            removed.append(f"service pid {pid}")
    for netns in _our_netns(layout):
        for pid in _run(["ip", "netns", "pids", netns], check=False).stdout.split():
            _stop(int(pid), 3)
        _run(["ip", "netns", "del", netns], check=False)
        removed.append(f"netns {netns}")
    for mount in sorted(_mounts_under(layout.fleet), key=len, reverse=True):
        if _run(["umount", mount], check=False).returncode != 0:
            _run(["umount", "-l", mount], check=False)
        removed.append(f"mount {mount}")
    for link in _our_links(layout):
        _run(["ip", "link", "del", link], check=False)
        removed.append(f"link {link}")
    if layout.fleet.exists():
        shutil.rmtree(layout.fleet, ignore_errors=True)
        removed.append(f"dir {layout.fleet}")
    if removed:
        log(f"removed {len(removed)} traces of the rehearsal fleet")
    return removed


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return out


def _stray_nspawn_pids(layout: Layout) -> list[int]:
    marker = str(layout.fleet / "hosts")
    return [
        p
        for p, c in _cmdlines().items()
        if (c.startswith("systemd-nspawn ") or "spark_rehearsal.machine systemd-nspawn " in c) and marker in c
    ]


def _stray_service_pids(layout: Layout) -> list[int]:
    registry_config = str(layout.fleet / "registry.yml")
    return [
        p
        for p, c in _cmdlines().items()
        if (c.startswith("docker-registry serve") and registry_config in c)
        or ("spark_rehearsal.hub" in c and f"--host {layout.gateway} " in c)
        or ("spark_rehearsal.ngc_auth" in c and f"--listen {layout.gateway}:443 " in c)
        or (c.rstrip().endswith(f" {apt_repo.APT_PORT}") and "http.server" in c and f"--bind {layout.gateway} " in c)
    ]


def _our_netns(layout: Layout) -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout.split("\n")
    return [line.split()[0] for line in out if line.startswith(layout.netns_prefix)]


def _our_links(layout: Layout) -> list[str]:
    names = [
        line.split(":")[1].strip().split("@")[0]
        for line in _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines()
        if ":" in line
    ]
    return [n for n in names if n == layout.bridge or n.startswith(layout.veth_prefix)]


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(prefix) or target == str(path):
            mounts.append(target)
    return mounts


# --------------------------------------------------------------------------- status


@dataclass
class HostStatus:
    name: str
    address: str
    machine_running: bool
    ssh: bool


def status(layout: Layout | None = None) -> tuple[FleetRecord, list[HostStatus], dict[str, bool]]:
    layout = layout or Layout.default()
    record = FleetRecord.load(layout)
    hosts = [HostStatus(h.name, h.address, _alive(h.pid), _wait_port(h.address, 22, 1.5)) for h in record.hosts]
    services = {
        "registry (nvcr.io)": _alive(record.registry_pid)
        and _alive(record.door_pid)
        and _wait_port(layout.gateway, 443, 1),
        f"hub ({record.hub_endpoint})": _alive(record.hub_pid) and _wait_port(layout.gateway, HUB_PORT, 1),
        f"package mirror (http://{layout.gateway}:{apt_repo.APT_PORT}/)": _alive(record.apt_pid)
        and _wait_port(layout.gateway, apt_repo.APT_PORT, 1),
    }
    return record, hosts, services


def leftovers(layout: Layout | None = None) -> list[str]:
    """Anything of a fleet still present (used to prove `down` leaves nothing)."""
    layout = layout or Layout.default()
    found = [f"netns {n}" for n in _our_netns(layout)] + [f"link {n}" for n in _our_links(layout)]
    found += [f"mount {m}" for m in _mounts_under(layout.fleet)]
    found += [f"process {p}" for p in _stray_nspawn_pids(layout) + _stray_service_pids(layout)]
    if layout.fleet.exists():
        found.append(f"dir {layout.fleet}")
    return found
