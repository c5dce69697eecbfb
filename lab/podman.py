"""A podman wrapper that keeps all of its state under the lab directory.

Every call gets ``CONTAINERS_CONF`` pointing to the lab's own
``containers.conf`` (runc, cgroupfs, file events, explicit ulimits: the
defaults fail on a cgroups-v1 hybrid machine whose PID 1 is not systemd) and
its own ``--root``/``--runroot``, so the system's podman state is untouched.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

from . import config, hoststate

CONTAINERS_CONF = """\
# Written by the qmail lab (lab/podman.py); do not edit.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{run}/events.log"
tmp_dir = "{run}/libpod"
static_dir = "{root}/libpod"
volume_path = "{root}/volumes"

[network]
network_backend = "netavark"
network_config_dir = "{base}/networks"
"""


class PodmanError(RuntimeError):
    """A podman command failed."""


class Podman:
    """Run podman with the lab's private configuration and storage."""

    def __init__(self, base: pathlib.Path | None = None):
        self.base = pathlib.Path(base or config.lab_dir()) / "podman"
        self.root = self.base / "storage"
        self.run_dir = self.base / "run"
        self.conf = self.base / "containers.conf"
        self._prepare()

    def _prepare(self) -> None:
        """Write containers.conf; forget runtime state left from an earlier boot."""
        for path in (self.root, self.base / "networks"):
            path.mkdir(parents=True, exist_ok=True)
        boot_id = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        marker = self.base / "boot_id"
        if marker.exists() and marker.read_text().strip() != boot_id:
            # runroot/tmp_dir must not survive a reboot (podman expects tmpfs).
            shutil.rmtree(self.run_dir, ignore_errors=True)
        marker.write_text(boot_id + "\n")
        # Before the first podman command: any of them creates /run/containers.
        with hoststate.locked() as state:
            hoststate.record(state)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            CONTAINERS_CONF.format(run=self.run_dir, root=self.root, base=self.base)
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment for podman calls."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.conf)
        return env

    def argv(self, *args: str) -> list[str]:
        """Full podman argv with the lab's storage options."""
        return [
            "podman",
            "--root", str(self.root),
            "--runroot", str(self.run_dir / "storage"),
            "--storage-driver", "overlay",
            *args,
        ]

    def __call__(self, *args: str, check: bool = True, input: str | bytes | None = None,
                 capture: bool = True, timeout: float | None = None, text: bool = True,
                 ) -> subprocess.CompletedProcess:
        """Run ``podman ARGS``; raise PodmanError on failure when ``check``."""
        proc = subprocess.run(
            self.argv(*args), env=self.env, input=input, text=text, timeout=timeout,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
        if check and proc.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(args)} -> {proc.returncode}\n{proc.stderr or ''}"
            )
        return proc

    def json(self, *args: str):
        """Run a podman command whose output is JSON and decode it."""
        out = self(*args).stdout
        return json.loads(out) if out.strip() else []

    def image_exists(self, ref: str) -> bool:
        """True if the image ``ref`` is in the lab's storage."""
        return self("image", "exists", ref, check=False).returncode == 0

    def containers(self) -> list[dict]:
        """All lab containers (running or not)."""
        return self.json("ps", "-a", "--filter", f"label={config.LABEL}", "--format", "json")

    def networks(self) -> list[dict]:
        """All networks in the lab's network config dir."""
        return self.json("network", "ls", "--format", "json")


def available() -> str | None:
    """Return None if podman can be used here, else the reason why not."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman runc)"
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc)"
    if os.geteuid() != 0:
        return "the lab needs root (rootful podman, debootstrap)"
    return None
