"""Snapshot and restore the bits of the machine that podman/netavark change.

netavark switches ``net.ipv4.ip_forward`` on and leaves the nft tables
``ip nat``/``ip filter`` behind; podman and runc may create directories under
/run. The first lab session on a machine records how things were (in a JSON
file under the lab dir); the last one to leave puts them back: it removes only
tables and directories that did not exist before, and never touches
/run/containers or /run/libpod if they were there already.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import pathlib
import shutil
import subprocess

IP_FORWARD = pathlib.Path("/proc/sys/net/ipv4/ip_forward")
RUN_DIRS = ["/run/containers", "/run/libpod", "/run/runc", "/run/netns", "/run/crun"]


def nft_tables() -> list[str]:
    """Return the nft tables as "family name" strings (empty if nft is absent)."""
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.removeprefix("table ").strip() for line in out.splitlines() if line.strip()]


def snapshot() -> dict:
    """Return the current machine state the lab may change."""
    return {
        "ip_forward": IP_FORWARD.read_text().strip(),
        "nft_tables": nft_tables(),
        "run_dirs": {d: pathlib.Path(d).exists() for d in RUN_DIRS},
    }


@contextlib.contextmanager
def locked(state_dir: pathlib.Path):
    """Hold an exclusive lock on the lab's machine-state file while inside."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "machine-state.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield state_dir / "machine-state.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(path: pathlib.Path) -> None:
    """Record the machine state unless an earlier session already did."""
    if not path.exists():
        path.write_text(json.dumps(snapshot(), indent=1))


def restore(path: pathlib.Path) -> list[str]:
    """Put the recorded machine state back; return what was done."""
    if not path.exists():
        return []
    before = json.loads(path.read_text())
    done = []
    for table in nft_tables():
        if table not in before["nft_tables"] and table in ("ip nat", "ip filter",
                                                           "ip6 nat", "ip6 filter"):
            subprocess.run(["nft", "delete", "table", *table.split()], check=False)
            done.append(f"deleted nft table {table}")
    if IP_FORWARD.read_text().strip() != before["ip_forward"]:
        IP_FORWARD.write_text(before["ip_forward"] + "\n")
        done.append(f"net.ipv4.ip_forward = {before['ip_forward']}")
    for directory, existed in before["run_dirs"].items():
        if not existed and pathlib.Path(directory).exists():
            shutil.rmtree(directory, ignore_errors=True)
            done.append(f"removed {directory}")
    path.unlink()
    return done
