"""Build the lab images from Debian packages (no registry needed).

``base``     Debian 12 minbase + systemd, python3, a C tool chain (to build
             qmail inside hosts), daemontools, ucspi-tcp, and Salt installed
             into /opt/salt from a wheelhouse built on this machine, with an
             enabled ``salt-minion`` unit that starts once /etc/salt/minion
             exists.
``sendmail`` ``base`` + Debian's sendmail, enabled, and inetd (openbsd-inetd,
             nothing enabled in it): the legacy machine.

Images are tagged with a hash of their recipe, built once per machine and
cached in the lab's podman storage; changing the recipe rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import time

from . import config
from .podman import Podman

BASE_PACKAGES = [
    "systemd-sysv", "dbus", "python3", "python3-venv", "iproute2", "procps",
    "ca-certificates", "gcc", "make", "libc6-dev", "xz-utils", "groff-base",
    "daemontools", "ucspi-tcp", "netcat-openbsd", "less", "file",
]

SENDMAIL_PACKAGES = ["sendmail", "openbsd-inetd"]

MINION_UNIT = """\
[Unit]
Description=Salt minion (qmail lab)
After=network.target
ConditionPathExists=/etc/salt/minion

[Service]
ExecStart=/opt/salt/bin/salt-minion
KillMode=process
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""

# Runs in the chroot after debootstrap; /wheels is the host's wheelhouse.
BASE_SETUP = f"""\
set -eu
export DEBIAN_FRONTEND=noninteractive
python3 -m venv /opt/salt
/opt/salt/bin/pip install --quiet --no-index --find-links /wheels salt=={config.SALT_VERSION}
for cmd in salt-minion salt-call; do ln -sf /opt/salt/bin/$cmd /usr/bin/$cmd; done
mkdir -p /etc/salt /etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/salt-minion.service \
    /etc/systemd/system/multi-user.target.wants/salt-minion.service
# Nothing in a container needs these; they only slow the boot down.
for unit in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
            e2scrub_all.timer fstrim.timer getty@tty1.service; do
    ln -sf /dev/null /etc/systemd/system/$unit
done
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache
"""

# Runs in the chroot of a copy of the base tree.
SENDMAIL_SETUP = f"""\
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends {' '.join(SENDMAIL_PACKAGES)} >/dev/null
rm -f /usr/sbin/policy-rc.d
update-rc.d sendmail defaults >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
"""

VARIANTS = ("base", "sendmail")

# A clean environment in the chroot: the host's PIP_* etc. must not leak in.
CHROOT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
              "HOME=/root LANG=C.UTF-8")


def _recipe(variant: str) -> dict:
    base = {
        "suite": config.SUITE, "mirror": config.MIRROR, "packages": BASE_PACKAGES,
        "salt": config.SALT_VERSION, "python": "3.11", "unit": MINION_UNIT,
        "setup": BASE_SETUP, "version": 1,
    }
    if variant == "base":
        return base
    if variant == "sendmail":
        return {"base": base, "packages": SENDMAIL_PACKAGES, "setup": SENDMAIL_SETUP}
    raise ValueError(f"unknown image variant {variant!r}; choose from {VARIANTS}")


def tag(variant: str) -> str:
    """Return the image reference for ``variant`` (recipe hash as tag)."""
    digest = hashlib.sha256(json.dumps(_recipe(variant), sort_keys=True).encode())
    return f"{config.IMAGE_PREFIX}-{variant}:{digest.hexdigest()[:12]}"


def _log(msg: str) -> None:
    print(f"[lab image] {msg}", file=sys.stderr, flush=True)


def _run(argv: list[str], **kwargs) -> None:
    subprocess.run(argv, check=True, **kwargs)


def _chroot(root: pathlib.Path, script: str, binds: dict[str, str] | None = None) -> None:
    """Run a shell ``script`` in ``root`` inside a private mount namespace.

    /proc, /sys, /dev and ``binds`` (host path -> path in root) are mounted in a
    namespace of their own, so nothing stays mounted if the build dies.
    """
    mounts = [
        f"mount -t proc proc {root}/proc",
        f"mount --rbind /sys {root}/sys",
        f"mount --rbind /dev {root}/dev",
    ]
    for src, dst in (binds or {}).items():
        (root / dst.lstrip("/")).mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --bind {src} {root}/{dst.lstrip('/')}")
    outer = " && ".join(mounts) + f" && exec chroot {root} env -i {CHROOT_ENV} /bin/sh -c \"$0\""
    _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", outer, script])


def wheelhouse() -> pathlib.Path:
    """Return a directory of wheels for Salt built with this Python (cached).

    The host's Python must be the image's (Debian 12's CPython 3.11) so that
    wheels built from source here also work in the image.
    """
    path = config.lab_dir() / "wheels" / f"salt-{config.SALT_VERSION}-py311"
    if (path / ".complete").exists():
        return path
    if sys.version_info[:2] != (3, 11):
        raise RuntimeError("build the wheelhouse with Debian 12's python3 (3.11)")
    _log(f"building the Salt {config.SALT_VERSION} wheelhouse in {path} (pip wheel)")
    path.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(path),
          f"salt=={config.SALT_VERSION}"])
    (path / ".complete").touch()
    return path


def _rootfs_dir(variant: str) -> pathlib.Path:
    return config.lab_dir() / "rootfs" / tag(variant).rsplit("/", 1)[1].replace(":", "-")


def _build_base_tree(dest: pathlib.Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    wheels = wheelhouse()
    _log(f"debootstrap {config.SUITE} minbase into {tmp} (about 1-2 minutes)")
    t0 = time.monotonic()
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
          config.SUITE, str(tmp), config.MIRROR], stdout=subprocess.DEVNULL)
    _log(f"debootstrap done in {time.monotonic() - t0:.0f} s; installing Salt into /opt/salt")
    unit = tmp / "etc/systemd/system/salt-minion.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(MINION_UNIT)
    _chroot(tmp, BASE_SETUP, {str(wheels): "/wheels"})
    (tmp / "wheels").rmdir()
    tmp.rename(dest)


def _build_sendmail_tree(dest: pathlib.Path) -> None:
    base = _rootfs_dir("base")
    if not base.exists():
        _build_base_tree(base)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _log(f"copying the base tree to {tmp}")
    _run(["cp", "-a", str(base), str(tmp)])
    shutil.copy("/etc/resolv.conf", tmp / "etc/resolv.conf")
    _log("installing sendmail with apt-get in the chroot")
    t0 = time.monotonic()
    _chroot(tmp, SENDMAIL_SETUP)
    (tmp / "etc/resolv.conf").unlink()
    _log(f"sendmail installed in {time.monotonic() - t0:.0f} s")
    tmp.rename(dest)


def build(variant: str, podman: Podman | None = None, force: bool = False,
          verbose: bool = False) -> str:
    """Build (or reuse) the image ``variant``; return its reference.

    Progress goes to stderr; a cached image is only reported when ``verbose``.
    """
    podman = podman or Podman()
    ref = tag(variant)
    if podman.image_exists(ref) and not force:
        if verbose:
            _log(f"{variant}: cached as {ref}")
        return ref
    t0 = time.monotonic()
    _log(f"{variant}: building {ref}")
    tree = _rootfs_dir(variant)
    if force or not tree.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        (_build_base_tree if variant == "base" else _build_sendmail_tree)(tree)
    _log(f"{variant}: importing into podman")
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(tree), "-cf", "-", "."],
                           stdout=subprocess.PIPE)
    try:
        proc = subprocess.run(
            podman.argv("import", "--quiet", "--change", "CMD=/sbin/init",
                        "--change", "STOPSIGNAL=SIGRTMIN+3", "-", ref),
            env=podman.env, stdin=tar.stdout, stdout=subprocess.DEVNULL, check=True)
    finally:
        tar.stdout.close()
        tar.wait()
    del proc
    _log(f"{variant}: ready in {time.monotonic() - t0:.0f} s")
    return ref


def build_all(podman: Podman | None = None) -> dict[str, str]:
    """Build every variant, then drop what older recipes left (each build
    tree is ~700 MB); return {variant: image reference}."""
    podman = podman or Podman()
    refs = {variant: build(variant, podman, verbose=True) for variant in VARIANTS}
    prune(podman)
    return refs


def prune(podman: Podman | None = None) -> None:
    """Remove build trees and images whose recipe is no longer current (an
    image that containers still use stays: no ``rmi -f``)."""
    podman = podman or Podman()
    current = {tag(v) for v in VARIANTS}
    root = config.lab_dir() / "rootfs"
    keep = {_rootfs_dir(v).name for v in VARIANTS}
    for tree in root.glob("*") if root.exists() else []:
        if tree.name not in keep:
            shutil.rmtree(tree, ignore_errors=True)
    for image in podman.json("images", "--format", "json"):
        for name in image.get("Names") or []:
            if name.startswith(config.IMAGE_PREFIX) and name not in current:
                if podman("rmi", name, check=False).returncode == 0:
                    _log(f"removed the outdated image {name}")
