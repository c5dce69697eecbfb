"""Build the lab images from Debian packages (no registry needed).

``base``     Debian minbase + systemd, python3, a C tool chain (to build
             qmail inside hosts), daemontools, ucspi-tcp, publicsuffix, and
             Salt installed into /opt/salt from a wheelhouse built with the
             release's own python3, with an enabled ``salt-minion`` unit that
             starts once /etc/salt/minion exists.
``sendmail`` ``base`` + Debian's sendmail, enabled, and inetd (openbsd-inetd,
             nothing enabled in it): the legacy machine.

Each variant exists per Debian release (``config.RELEASES``: 11 bullseye,
12 bookworm, 13 trixie). Images are tagged with a hash of their recipe,
built once per machine and cached in the lab's podman storage; changing the
recipe rebuilds them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable

from . import config
from .podman import Podman

BASE_PACKAGES = [
    "systemd-sysv", "dbus", "python3", "python3-venv", "iproute2", "procps",
    "ca-certificates", "gcc", "make", "libc6-dev", "xz-utils", "groff-base",
    "daemontools", "ucspi-tcp", "netcat-openbsd", "less", "file", "publicsuffix",
]

# tlswrapper (with tlswrapper-smtp) gives qmail-smtpd STARTTLS and implicit
# TLS from outside (qmail:tls); Debian packages it from 12 on, 11 has none.
TLS_PACKAGES = {"12": ["tlswrapper"], "13": ["tlswrapper"]}

SENDMAIL_PACKAGES = ["sendmail", "openbsd-inetd"]

# What the formula may install with pkg.installed on a lab host, which
# reaches no Debian mirror: the base image carries these .debs (with the
# dependencies the image lacks) in a local archive that is its only apt
# source, so `pkg.installed` really runs apt, offline. Not installed: a
# host gets one when a setting asks for it. Conflicting sets (sendmail,
# postfix: both the MTA) are fetched separately; a package the release
# does not have is left out, so the formula's own refusal is what a test
# sees there.
ARCHIVE_PACKAGES = [
    SENDMAIL_PACKAGES,
    ["cvm", "ucspi-tcp-ipv6", "python3-dkim", "python3-cryptography", "python3-spf", "spamc",
     "spamd", "patch"],
    ["postfix"],
    # Installed in the image already, and removed by ucspi-tcp-ipv6: the
    # .deb that qmail.service.clean installs again (hence --reinstall).
    ["ucspi-tcp"],
]
ARCHIVE_DIR = "/var/lib/qmail-lab-archive"

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

# Runs in a throwaway copy of the freshly bootstrapped tree: pip as a user of
# that release would run it (a venv of its python3, pip upgraded, sdists
# such as timelib compiled against its python3-dev), over HTTPS with this
# machine's CA bundle. /wheels is the release's wheelhouse being built.
WHEEL_SETUP = f"""\
set -eu
export DEBIAN_FRONTEND=noninteractive
update-ca-certificates >/dev/null 2>&1
export PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
export PIP_DISABLE_PIP_VERSION_CHECK=1
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-dev >/dev/null
python3 -m venv /tmp/wheel-venv
/tmp/wheel-venv/bin/pip install --quiet --upgrade pip
/tmp/wheel-venv/bin/pip wheel --quiet -w /wheels salt=={config.SALT_VERSION}
"""

# Runs in the chroot after debootstrap; /wheels is the release's wheelhouse.
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

# Runs in the chroot after BASE_SETUP, with the mirror reachable: fetch the
# archive's .debs (see ARCHIVE_PACKAGES; the index is written from outside).
ARCHIVE_FETCH = f"""\
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
mkdir -p {ARCHIVE_DIR}
for set in {' '.join('"' + ' '.join(group) + '"' for group in ARCHIVE_PACKAGES)}; do
    have=""
    for pkg in $set; do
        if apt-cache show "$pkg" >/dev/null 2>&1; then have="$have $pkg"; fi
    done
    [ -n "$have" ] || continue
    apt-get install -y -qq --download-only --reinstall --no-install-recommends $have >/dev/null
    mv /var/cache/apt/archives/*.deb {ARCHIVE_DIR}/ 2>/dev/null || true
done
apt-get clean
rm -rf /var/lib/apt/lists/*
"""

# Runs in the chroot once the archive has its index: it becomes the only
# source, and apt knows it (the lists are kept: hosts cannot update them
# from anywhere else).
ARCHIVE_USE = f"""\
set -eu
rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
echo 'deb [trusted=yes] file:{ARCHIVE_DIR} ./' > /etc/apt/sources.list
apt-get update -qq
"""

# Runs in the chroot after BASE_SETUP where python3 is older than 3.10
# (Debian 11). Salt 3008.4 says Requires-Python >=3.8, but one module,
# salt/cluster/ring.py, has annotations such as ``str | None`` (PEP 604)
# that Python evaluates when the class is defined, and 3.9 cannot:
# salt-minion dies at start with "TypeError: unsupported operand type(s) for
# |: 'type' and 'NoneType'" (salt-call --local does not import it). Postponed
# annotations (PEP 563) in that one file are enough; nothing else in Salt
# needs 3.10.
PY39_SETUP = """\
set -eu
/opt/salt/bin/python - <<'PY'
import ast, pathlib, sysconfig
path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "salt/cluster/ring.py"
text = path.read_text()
if "from __future__ import annotations" not in text:
    first = ast.parse(text).body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    lines = text.splitlines(keepends=True)
    lines.insert(first.end_lineno if docstring else 0, "from __future__ import annotations\\n")
    path.write_text("".join(lines))
PY
/opt/salt/bin/python -c 'import salt.cluster.ring'
"""


def _needs_py39_fix(release: str) -> bool:
    major, minor = map(int, config.RELEASES[release][1].split("."))
    return (major, minor) < (3, 10)


#: The name sendmail's TLS certificate in the image is made for.
SENDMAIL_IMAGE_NAME = "sendmail-image.lab.invalid"
# Runs in the chroot of a copy of the base tree.
SENDMAIL_SETUP = f"""\
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends {' '.join(SENDMAIL_PACKAGES)} >/dev/null
rm -f /usr/sbin/policy-rc.d
update-rc.d sendmail defaults >/dev/null
# Debian 13's sendmail-bin ships a native sendmail.service, which then hides
# the SysV script from systemd, but its postinst exits before the debhelper
# part that would enable it: enable it, as on a legacy machine that runs it.
if [ -f /usr/lib/systemd/system/sendmail.service ]; then
    systemctl enable --quiet sendmail.service
fi
# What sendmail's first start does (its init script's `make all` in
# /etc/mail: the databases, and update_tls's keys and DSA parameters with
# openssl), done once here, as on a legacy machine that has run sendmail:
# not again at the boot of every host made from this image. update_tls
# names its certificate `hostname -f`: a name of the image's own, which
# /etc/hosts resolves while it runs (no DNS here).
cp -p /etc/hosts /etc/hosts.lab-image
echo "127.0.1.1 {SENDMAIL_IMAGE_NAME} {SENDMAIL_IMAGE_NAME.split('.')[0]}" >> /etc/hosts
unshare --uts sh -c 'hostname {SENDMAIL_IMAGE_NAME} && make all -s -C /etc/mail' >/dev/null
mv /etc/hosts.lab-image /etc/hosts
test -s /etc/mail/tls/sendmail-common.key
apt-get clean
"""

VARIANTS = ("base", "sendmail")

# A clean environment in the chroot: the host's PIP_* etc. must not leak in.
CHROOT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
              "HOME=/root LANG=C.UTF-8")


def _recipe(variant: str, release: str) -> dict:
    suite, python = config.RELEASES[release]
    base = {
        "suite": suite, "mirror": config.MIRROR,
        "packages": BASE_PACKAGES + TLS_PACKAGES.get(release, []),
        "salt": config.SALT_VERSION, "python": python, "unit": MINION_UNIT,
        "setup": BASE_SETUP, "wheels": WHEEL_SETUP, "version": 1,
        "archive": [ARCHIVE_PACKAGES, ARCHIVE_FETCH, ARCHIVE_USE],
    }
    if _needs_py39_fix(release):
        base["py39_fix"] = PY39_SETUP
    if variant == "base":
        return base
    if variant == "sendmail":
        return {"base": base, "packages": SENDMAIL_PACKAGES, "setup": SENDMAIL_SETUP}
    raise ValueError(f"unknown image variant {variant!r}; choose from {VARIANTS}")


def tag(variant: str, release: str | None = None) -> str:
    """Return the image reference for ``variant`` of Debian ``release``
    (default: config.DEFAULT_RELEASE), the recipe's hash as its tag."""
    release = config.check_release(release)
    digest = hashlib.sha256(json.dumps(_recipe(variant, release), sort_keys=True).encode())
    return f"{config.IMAGE_PREFIX}-debian{release}-{variant}:{digest.hexdigest()[:12]}"


def release_of(ref: str) -> str:
    """The Debian release of an image reference made by ``tag``."""
    name = ref.rsplit("/", 1)[-1].split(":", 1)[0]
    return name[len(config.IMAGE_PREFIX.rsplit("/", 1)[-1]) + len("-debian"):].split("-", 1)[0]


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


def _wheelhouse_dir(release: str) -> pathlib.Path:
    python = config.RELEASES[release][1].replace(".", "")
    return config.lab_dir() / "wheels" / f"salt-{config.SALT_VERSION}-py{python}"


def wheelhouse(release: str, tree: pathlib.Path) -> pathlib.Path:
    """Return the wheels of Salt for ``release``'s python3 (cached per
    python version), building them in a throwaway copy of ``tree`` (a fresh
    debootstrap of that release) when missing."""
    path = _wheelhouse_dir(release)
    if (path / ".complete").exists():
        return path
    work = tree.with_name(tree.name + ".wheels")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    _log(f"building the Salt {config.SALT_VERSION} wheelhouse for Debian {release} "
         f"in its own chroot (pip wheel, a few minutes) into {path}")
    t0 = time.monotonic()
    try:
        _run(["cp", "-a", str(tree), str(work)])
        shutil.copy("/etc/resolv.conf", work / "etc/resolv.conf")
        for crt in pathlib.Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(crt, work / "usr/local/share/ca-certificates" / crt.name)
        _chroot(work, WHEEL_SETUP, {str(path): "/wheels"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (path / ".complete").touch()
    _log(f"wheelhouse for Debian {release} built in {time.monotonic() - t0:.0f} s")
    return path


def _rootfs_dir(variant: str, release: str) -> pathlib.Path:
    return config.lab_dir() / "rootfs" / tag(variant, release).rsplit("/", 1)[1].replace(":", "-")


def _build_base_tree(dest: pathlib.Path, release: str) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    suite = config.RELEASES[release][0]
    _log(f"debootstrap {suite} minbase into {tmp} (about 1-2 minutes)")
    t0 = time.monotonic()
    packages = BASE_PACKAGES + TLS_PACKAGES.get(release, [])
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
          suite, str(tmp), config.MIRROR], stdout=subprocess.DEVNULL)
    _log(f"debootstrap done in {time.monotonic() - t0:.0f} s")
    wheels = wheelhouse(release, tmp)
    _log("installing Salt into /opt/salt")
    unit = tmp / "etc/systemd/system/salt-minion.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(MINION_UNIT)
    _chroot(tmp, BASE_SETUP, {str(wheels): "/wheels"})
    if _needs_py39_fix(release):
        _log("Python < 3.10: postponed annotations in salt/cluster/ring.py (see PY39_SETUP)")
        _chroot(tmp, PY39_SETUP)
    (tmp / "wheels").rmdir()
    _log(f"fetching the local archive's packages into {ARCHIVE_DIR}")
    shutil.copy("/etc/resolv.conf", tmp / "etc/resolv.conf")
    _chroot(tmp, ARCHIVE_FETCH)
    _write_archive_index(tmp / ARCHIVE_DIR.lstrip("/"))
    _chroot(tmp, ARCHIVE_USE)
    (tmp / "etc/resolv.conf").unlink()
    tmp.rename(dest)


def _write_archive_index(archive: pathlib.Path) -> None:
    """Write the flat ``Packages`` index of the .debs in ``archive`` (what
    dpkg-scanpackages writes; dpkg-deb is on every Debian machine)."""
    stanzas = []
    for deb in sorted(archive.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True,
                                 capture_output=True, text=True).stdout.rstrip("\n")
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {deb.stat().st_size}\n"
                       f"SHA256: {digest}\n")
    (archive / "Packages").write_text("\n".join(stanzas))


def _build_sendmail_tree(dest: pathlib.Path, release: str) -> None:
    base = _rootfs_dir("base", release)
    if not base.exists():
        _build_base_tree(base, release)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _log(f"copying the base tree to {tmp}")
    _run(["cp", "-a", str(base), str(tmp)])
    _log("installing sendmail from the image's local archive")
    t0 = time.monotonic()
    _chroot(tmp, SENDMAIL_SETUP)
    _log(f"sendmail installed in {time.monotonic() - t0:.0f} s")
    tmp.rename(dest)


def build(variant: str, podman: Podman | None = None, force: bool = False,
          verbose: bool = False, release: str | None = None) -> str:
    """Build (or reuse) the image ``variant`` of Debian ``release`` (default:
    config.DEFAULT_RELEASE); return its reference.

    Progress goes to stderr; a cached image is only reported when ``verbose``.
    """
    podman = podman or Podman()
    release = config.check_release(release)
    ref = tag(variant, release)
    what = f"Debian {release} {variant}"
    with _build_lock(release):
        if podman.image_exists(ref) and not force:
            if verbose:
                _log(f"{what}: cached as {ref}")
            return ref
        return _build(variant, release, ref, what, podman, force)


@contextlib.contextmanager
def _build_lock(release: str):
    """One build per release at a time, across processes (tests building the
    same missing image at once would otherwise share a half-built tree)."""
    path = config.lab_dir() / f".build-{release}.lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(variant: str, release: str, ref: str, what: str, podman: Podman,
           force: bool) -> str:
    t0 = time.monotonic()
    _log(f"{what}: building {ref}")
    tree = _rootfs_dir(variant, release)
    if force or not tree.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        (_build_base_tree if variant == "base" else _build_sendmail_tree)(tree, release)
    _log(f"{what}: importing into podman")
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
    _log(f"{what}: ready in {time.monotonic() - t0:.0f} s")
    return ref


def build_all(podman: Podman | None = None,
              releases: Iterable[str] | None = None) -> dict[str, str]:
    """Build every variant of ``releases`` (default: the default release;
    other releases are built when a host first needs them), then drop what
    older recipes left (each build tree is ~700 MB); return
    {"<variant>" or "<variant>-<release>": image reference}."""
    podman = podman or Podman()
    releases = [config.check_release(r) for r in (releases or [config.DEFAULT_RELEASE])]
    refs = {}
    for release in releases:
        for variant in VARIANTS:
            key = variant if release == config.DEFAULT_RELEASE else f"{variant}-{release}"
            refs[key] = build(variant, podman, verbose=True, release=release)
    prune(podman)
    return refs


def prune(podman: Podman | None = None) -> None:
    """Remove build trees and images whose recipe is no longer current (an
    image that containers still use stays: no ``rmi -f``)."""
    podman = podman or Podman()
    current = {tag(v, r) for v in VARIANTS for r in config.RELEASES}
    root = config.lab_dir() / "rootfs"
    keep = {_rootfs_dir(v, r).name for v in VARIANTS for r in config.RELEASES}
    for tree in root.glob("*") if root.exists() else []:
        # .tmp/.wheels: a build under way (its next attempt cleans a dead one)
        if tree.name not in keep and tree.suffix not in (".tmp", ".wheels"):
            shutil.rmtree(tree, ignore_errors=True)
    for image in podman.json("images", "--format", "json"):
        for name in image.get("Names") or []:
            if name.startswith(config.IMAGE_PREFIX) and name not in current:
                if podman("rmi", name, check=False).returncode == 0:
                    _log(f"removed the outdated image {name}")
