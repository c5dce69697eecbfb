"""Snapshot and restore the bits of the machine that podman/netavark change.

netavark switches ``net.ipv4.ip_forward`` on (and, for an IPv6 network,
``net.ipv6.conf.all.forwarding``) and leaves the nft tables
``ip nat``/``ip filter`` behind; podman, netavark and runc create
directories under /run. The first lab session on the machine records how
things were (in /run, so the record is per boot and shared by every lab
directory); the last one to leave puts them back: it removes only tables and
directories that did not exist before (so /run/containers or /run/libpod that
were there already stay), and only once no podman bridge is left on the
machine (anyone's: a running podman network still needs forwarding and NAT).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import subprocess

IP_FORWARD = pathlib.Path("/proc/sys/net/ipv4/ip_forward")
IP6_FORWARD = pathlib.Path("/proc/sys/net/ipv6/conf/all/forwarding")
RUN_DIRS = ["/run/containers", "/run/libpod", "/run/runc", "/run/netns", "/run/crun"]
STATE = pathlib.Path("/run/qmail-lab-machine-state.json")
# Locked with flock(2) (a directory can be locked), so no lock file is left behind.
LOCK_DIR = "/run/lock" if os.path.isdir("/run/lock") else "/run"
NETAVARK_TABLES = ("ip nat", "ip filter", "ip6 nat", "ip6 filter")


def nft_tables() -> list[str]:
    """Return the nft tables as "family name" strings (empty if nft is absent)."""
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.removeprefix("table ").strip() for line in out.splitlines() if line.strip()]


def podman_bridges() -> list[str]:
    """Names of the podman bridges (``podman<N>``) on the machine."""
    out = subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True,
                         text=True, check=False).stdout
    return [link["ifname"] for link in json.loads(out or "[]")
            if link["ifname"].startswith("podman")]


def snapshot() -> dict:
    """Return the current machine state the lab may change."""
    return {
        "ip_forward": IP_FORWARD.read_text().strip(),
        "ip6_forward": IP6_FORWARD.read_text().strip() if IP6_FORWARD.exists() else None,
        "nft_tables": nft_tables(),
        "run_dirs": {d: pathlib.Path(d).exists() for d in RUN_DIRS},
    }


@contextlib.contextmanager
def locked():
    """Hold the machine-wide lab lock while inside; yield the record's path."""
    fd = os.open(LOCK_DIR, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield STATE
    finally:
        os.close(fd)


def record(path: pathlib.Path = STATE) -> None:
    """Record the machine state unless an earlier session already did (a
    record of an older lab, without IPv6 forwarding, gets it now: no IPv6
    network was made before it)."""
    if not path.exists():
        path.write_text(json.dumps(snapshot(), indent=1))
        return
    before = json.loads(path.read_text())
    if "ip6_forward" not in before:
        before["ip6_forward"] = snapshot()["ip6_forward"]
        path.write_text(json.dumps(before, indent=1))


def restore(path: pathlib.Path = STATE) -> list[str]:
    """Put the recorded machine state back; return what was done.

    Does nothing while a podman bridge exists (some network is still up).
    """
    if not path.exists() or podman_bridges():
        return []
    before = json.loads(path.read_text())
    done = []
    for table in nft_tables():
        if table not in before["nft_tables"] and table in NETAVARK_TABLES:
            subprocess.run(["nft", "delete", "table", *table.split()], check=False)
            done.append(f"deleted nft table {table}")
    if IP_FORWARD.read_text().strip() != before["ip_forward"]:
        IP_FORWARD.write_text(before["ip_forward"] + "\n")
        done.append(f"net.ipv4.ip_forward = {before['ip_forward']}")
    six = before.get("ip6_forward")  # a record of an older lab has none
    if six is not None and IP6_FORWARD.read_text().strip() != six:
        IP6_FORWARD.write_text(six + "\n")
        done.append(f"net.ipv6.conf.all.forwarding = {six}")
    for directory, existed in before["run_dirs"].items():
        if not existed and pathlib.Path(directory).exists():
            done.append(_remove_dir(directory))
    path.unlink()
    return done


def _mountpoints() -> set[str]:
    with open("/proc/self/mountinfo") as fh:
        return {line.split()[4] for line in fh}


def _remove_dir(directory: str) -> str:
    """Remove a directory podman/netavark created; unmount it first if it is an
    (empty) mount point, as netavark leaves /run/netns bind-mounted on itself."""
    if directory in _mountpoints():
        if os.listdir(directory):
            return f"kept {directory}: a mount point with entries"
        subprocess.run(["umount", directory], check=False)
        if directory in _mountpoints():
            return f"kept {directory}: cannot unmount it"
    shutil.rmtree(directory, ignore_errors=True)
    return f"removed {directory}"
