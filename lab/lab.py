"""The lab: a podman network of its own and the hosts on it.

Each ``Lab`` gets a fresh bridge network with a /24 of its own and DNS
(aardvark-dns) that answers for every host's FQDN and short name (given as
network aliases): qmail-remote resolves ``smtproutes`` relays through DNS
only, never /etc/hosts. Hosts get fixed addresses, so every host's
/etc/hosts can list all the others from the first boot on (sendmail is slow
to start when it cannot resolve its own name).

The network is ``--internal``: hosts reach each other and this machine (the
gateway address, where the salt-master listens) but have no route out, so
nothing a test runs can talk to the Internet (a formula default pointing at an
official download URL fails at once instead of fetching); netavark then adds
no NAT rules either.

A tiny "anchor" container keeps the bridge (and thus the gateway address the
salt-master listens on) up while hosts come and go.

IPv6, for the hosts that ask for it (``create_hosts(..., ipv6=True)``): a
second ``--internal`` network of the session, ``<network>-6``, with a ULA
/64 of its own (and the /24 podman gives every network), made on first
use; such hosts are on both and have ``host.ip6``. Their interface ids hold
one zero group (``<prefix>:0:1:1:<n>``), the spelling where tcpserver
(``<prefix>::1:1:<n>``) and RFC 5952 differ.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable

from . import config, hoststate, image
from .host import Host
from .podman import Podman

SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")


class Lab:
    """A lab network and its hosts. Use as a context manager or call up()/down()."""

    def __init__(self, podman: Podman | None = None, session: str | None = None):
        self.podman = podman or Podman()
        self.session = session or secrets.token_hex(3)
        self.network = f"{config.CONTAINER_PREFIX}-{self.session}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.network6 = f"{self.network}-6"
        self.subnet6: ipaddress.IPv6Network | None = None
        self.hosts: dict[str, Host] = {}
        self._next_ip = 10

    # -- life cycle ---------------------------------------------------------
    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    @property
    def gateway(self) -> str:
        """The bridge address on the host (where the salt-master listens)."""
        assert self.subnet is not None, "lab is not up"
        return str(self.subnet.network_address + 1)

    def up(self) -> Lab:
        """Record the machine state, create the network and its anchor."""
        anchor = image.build("base", self.podman)
        reap_orphans(self.podman)
        # Under the lock, so that a session leaving now cannot see an idle
        # machine and restore it under our feet.
        with hoststate.locked() as state:
            hoststate.record(state)
            self.subnet = self._create_network()
            self.podman("run", "-d", "--name", f"{self.network}-anchor",
                        *self._labels(),
                        "--network", self.network, "--ip", str(self.subnet.network_address + 2),
                        "--systemd=false", anchor, "sleep", "infinity")
        return self

    def _labels(self) -> list[str]:
        """podman --label options naming this lab session and its owner process."""
        return ["--label", config.LABEL, "--label", f"qmail-lab-session={self.session}",
                "--label", f"qmail-lab-owner={os.getpid()}@{_boot_id()}"]

    def _create_network(self, name: str | None = None, *extra: str) -> ipaddress.IPv4Network:
        """Create the network ``name`` (default: the session's) on a free /24
        of the pool, with ``extra`` options; return the /24."""
        used = set()
        for net in self.podman.networks():
            for sub in net.get("subnets") or []:
                used.add(ipaddress.ip_network(sub["subnet"]))
        used |= _routed_networks()  # other lab dirs, the system's podman, VPNs...
        for subnet in SUBNET_POOL.subnets(new_prefix=24):
            if any(subnet.version == other.version and subnet.overlaps(other)
                   for other in used):
                continue
            proc = self.podman("network", "create", "--internal", "--subnet", str(subnet),
                               *extra, "--label", config.LABEL, name or self.network,
                               check=False)
            if proc.returncode == 0:
                return subnet
            if "already" not in proc.stderr:
                raise RuntimeError(f"podman network create failed: {proc.stderr}")
        raise RuntimeError("no free /24 left in the lab's subnet pool")

    def enable_ipv6(self) -> ipaddress.IPv6Network:
        """Make the session's IPv6 network (once) and return its ULA /64."""
        assert self.subnet is not None, "lab is not up"
        if self.subnet6 is None:
            subnet6 = _ula_subnet()
            with hoststate.locked() as state:
                hoststate.record(state)  # netavark turns IPv6 forwarding on
                self._create_network(self.network6, "--ipv6", "--disable-dns",
                                     "--subnet", str(subnet6))
            self.subnet6 = subnet6
        return self.subnet6

    def down(self) -> list[str]:
        """Remove this lab's hosts and network; restore the machine if last out."""
        for ctr in self.podman.containers():
            if ctr.get("Labels", {}).get("qmail-lab-session") == self.session:
                self.podman("rm", "-f", "--time", "2", ctr["Id"], check=False)
        self.hosts.clear()
        self.podman("network", "rm", "-f", self.network, check=False)
        self.podman("network", "rm", "-f", self.network6, check=False)
        return restore_machine_if_idle(self.podman)

    # -- hosts ---------------------------------------------------------------
    def create_hosts(self, fqdns: Iterable[str], image_variant: str = "base",
                     files: dict[str, dict[str, str]] | None = None,
                     release: str | dict[str, str] | None = None,
                     ipv6: bool = False) -> list[Host]:
        """Create and boot hosts named ``fqdns`` from the image ``image_variant``
        of Debian ``release`` (one for all, or {fqdn: release}; default
        config.DEFAULT_RELEASE); with ``ipv6`` also on the session's IPv6
        network (``host.ip6``).

        ``files`` maps an FQDN to {path: content} written into the container
        before it boots (e.g. /etc/salt/minion). Returns the booted hosts.
        """
        assert self.subnet is not None, "lab is not up"
        fqdns = list(fqdns)
        releases = release if isinstance(release, dict) else dict.fromkeys(fqdns, release)
        refs = {}
        for fqdn in fqdns:
            rel = config.check_release(releases.get(fqdn))
            if rel not in refs:
                refs[rel] = image.build(image_variant, self.podman, release=rel)
        subnet6 = self.enable_ipv6() if ipv6 else None
        new = []
        for fqdn in fqdns:
            ref = refs[config.check_release(releases.get(fqdn))]
            if fqdn in self.hosts:
                raise ValueError(f"{fqdn} is already in the lab; remove it first")
            ip = str(self.subnet.network_address + self._next_ip)
            self._next_ip += 1
            name = f"{self.network}-{fqdn.split('.', 1)[0]}-{self._next_ip}"
            ip6 = str(subnet6.network_address + IID6 + self._next_ip) if subnet6 else None
            new.append(Host(self.podman, name, fqdn, ip, ref, ip6=ip6))
        everyone = list(self.hosts.values()) + new

        def boot(host: Host) -> None:
            args = ["create", "--name", host.name, "--hostname", host.fqdn,
                    *self._labels(),
                    *self._network_args(host),
                    "--network-alias", host.fqdn, "--network-alias", host.short,
                    "--systemd=always", "--stop-signal", "SIGRTMIN+3"]
            for other in everyone:
                args += ["--add-host", f"{other.fqdn}:{other.ip}",
                         "--add-host", f"{other.short}:{other.ip}"]
            self.podman(*args, host.image, "/sbin/init")
            for path, content in (files or {}).get(host.fqdn, {}).items():
                self._copy_in(host, path, content)
            self.podman("start", host.name)
            host.wait_booted()

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(boot, host) for host in new]:
                future.result()
        for old in self.hosts.values():
            lines = "".join(f"{h.ip}\t{h.fqdn} {h.short}\n" for h in new)
            old.run("cat >> /etc/hosts", input=lines)
        self.hosts.update((h.fqdn, h) for h in new)
        return new

    def _network_args(self, host: Host) -> list[str]:
        if host.ip6 is None:
            return ["--network", self.network, "--ip", host.ip]
        return ["--network", f"{self.network}:ip={host.ip}",
                "--network", f"{self.network6}:ip6={host.ip6}"]

    def _copy_in(self, host: Host, path: str, content: str) -> None:
        """Copy a file into a created (not yet started) container."""
        tmp = self.podman.base / "run" / f"copy-{secrets.token_hex(4)}"
        tmp.write_text(content)
        try:
            self.podman("cp", str(tmp), f"{host.name}:{path}")
        finally:
            tmp.unlink()

    def remove_hosts(self, hosts: Iterable[Host]) -> None:
        """Remove ``hosts`` from the lab."""
        names = []
        for host in hosts:
            self.hosts.pop(host.fqdn, None)
            names.append(host.name)
        if names:
            self.podman("rm", "-f", "--time", "2", *names, check=False)


# A host's IPv6 interface id, plus its number: one zero group (0:1:1:<n>).
IID6 = (1 << 32) | (1 << 16)


def _ula_subnet() -> ipaddress.IPv6Network:
    """A random ULA /64 (RFC 4193: fd + 40 random bits + a subnet id) that
    no route of this machine overlaps, none of its four groups zero (so the
    hosts' one zero group is the only one)."""
    routed = _routed_networks(6)
    while True:
        groups = [0xfd00 | secrets.randbits(8)] + [secrets.randbits(16) for _ in range(3)]
        if 0 in groups:
            continue
        subnet = ipaddress.IPv6Network(":".join(f"{g:x}" for g in groups) + "::/64")
        if not any(subnet.overlaps(other) for other in routed):
            return subnet


def _routed_networks(version: int = 4) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """IP networks of ``version`` this machine already routes (except the
    default route)."""
    out = subprocess.run(["ip", "-j", f"-{version}", "route", "show", "table", "all"],
                         capture_output=True, text=True, check=False).stdout
    nets = set()
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "default")
        if dst != "default" and route.get("type", "unicast") == "unicast":
            nets.add(ipaddress.ip_network(dst, strict=False))
    return nets


def _boot_id() -> str:
    return open("/proc/sys/kernel/random/boot_id").read().strip()


def reap_orphans(podman: Podman) -> list[str]:
    """Remove the containers and networks of lab sessions whose process is gone.

    A test run killed hard leaves its hosts behind; the next lab cleans up.
    Sessions of a live process (or without an owner label) are left alone.
    """
    dead = set()
    for ctr in podman.containers():
        labels = ctr.get("Labels") or {}
        owner = labels.get("qmail-lab-owner", "")
        pid, _, boot = owner.partition("@")
        if not pid.isdigit():
            continue
        alive = boot == _boot_id() and os.path.exists(f"/proc/{pid}")
        if not alive:
            dead.add(labels.get("qmail-lab-session"))
    done = []
    for session in sorted(dead):
        ids = [c["Id"] for c in podman.containers()
               if (c.get("Labels") or {}).get("qmail-lab-session") == session]
        podman("rm", "-f", "--time", "2", *ids, check=False)
        for network in (f"{config.CONTAINER_PREFIX}-{session}",
                        f"{config.CONTAINER_PREFIX}-{session}-6"):
            podman("network", "rm", "-f", network, check=False)
        done.append(f"removed orphaned lab session {session} ({len(ids)} containers)")
    return done


def _wait_podman_quiet(podman: Podman, timeout: float = 20) -> None:
    """Wait for conmon and ``podman container cleanup`` of our storage to exit.

    They tear the container networks down after ``podman rm`` has returned
    (and recreate /run/containers/networks while doing so).
    """
    marker = str(podman.root).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for proc in pathlib.Path("/proc").iterdir():
            if proc.name.isdigit() and proc.name != str(os.getpid()):
                try:
                    busy = marker in (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if busy:
                    break
        if not busy:
            return
        time.sleep(0.2)


def restore_machine_if_idle(podman: Podman) -> list[str]:
    """If no lab container or network is left, restore the machine state."""
    if podman.containers():
        return []
    _wait_podman_quiet(podman)
    with hoststate.locked() as state:
        if podman.containers():
            return []
        if any(n.get("name", "").startswith(config.CONTAINER_PREFIX + "-")
               for n in podman.networks()):
            return []
        return hoststate.restore(state)


def clean(podman: Podman | None = None, all_: bool = False) -> list[str]:
    """Remove every lab container and network (all sessions).

    With ``all_`` also remove the lab's images, image build trees and
    wheelhouse, the venvs and their wheels (the next run rebuilds them; a
    `.venv` linked to the lab dir is made anew by `make venv`). Then restore
    the machine state.
    """
    podman = podman or Podman()
    ids = [c["Id"] for c in podman.containers()]
    if ids:
        podman("rm", "-f", "--time", "2", *ids, check=False)
    done = [f"removed {len(ids)} lab containers"]
    for net in podman.networks():
        if net.get("name", "").startswith(config.CONTAINER_PREFIX + "-"):
            podman("network", "rm", "-f", net["name"], check=False)
            done.append(f"removed network {net['name']}")
    if all_:
        podman("rmi", "-a", "-f", check=False)
    done += restore_machine_if_idle(podman)
    if all_:
        root = config.lab_dir()
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo")
                  if line.split()[4].startswith(str(root) + "/")]
        if mounts:
            done.append(f"kept {root}: still mounted: {', '.join(mounts)}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            done.append(f"removed {root} (images, build trees, wheelhouse, venvs, podman storage, "
                        "compiled qmail trees)")
    return done
