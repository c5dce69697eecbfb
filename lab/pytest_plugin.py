"""pytest fixtures for lab tests (real hosts, real salt-master).

Load it from a conftest with ``from lab.pytest_plugin import *`` (pytest
refuses ``pytest_plugins`` outside the root conftest). Fixtures:

``lab``            session: the ``Lab`` (network + base image); fails with a clear
                   message when podman cannot be used (deselect with -m 'not lab').
``lab_left_empty`` module, autouse: a module that leaves hosts in the lab fails
                   its teardown (and they are removed).
``lab_master``     session: a started ``LabMaster`` listening on the lab gateway.
``lab_hosts``      function: factory ``lab_hosts(fqdns, image="base", pillars=None,
                   release=None, ipv6=False) -> list[Host]``; ``release`` is a Debian
                   release ("11", "12", "13"; default "12") for all hosts or
                   {fqdn: release}; ``ipv6``: also on the lab's IPv6 network (host.ip6);
                   the hosts (and their keys) go away after the test.
``lab_hosts_module`` module: the same factory, hosts live until the module ends.
``qmail_source``   session: a ``QmailSource`` (path, sha256, salt_hash): $QMAIL_SOURCE,
                   else the official release downloaded once; the test is
                   skipped, with the download's error, when neither is there.

Example (a module sharing two hosts; see test/e2e/test_lab_control.py)::

    pytestmark = pytest.mark.lab

    @pytest.fixture(scope="module")
    def spool(lab_master, lab_hosts_module):
        fqdn = "ccs.cla.kobe-u.ac.jp"
        (host,) = lab_hosts_module([fqdn], image="sendmail",
                                   pillars={fqdn: {"qmail": {"role": "spool"}}})
        lab_master.sync_formula(fqdn)
        return host

    def test_something(lab_master, spool):
        ret = lab_master.salt(spool.fqdn, "state.apply", "qmail.control")
        assert spool.read_file("/var/qmail/control/me") == spool.fqdn + "\n"
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import tempfile

import pytest

from . import image
from . import podman as lab_podman
from . import source as lab_source
from .lab import Lab
from .master import LabMaster, loopback_event_listener
from .source import QmailSource

__all__ = ["salt_factories_default_root_dir", "event_listener", "lab", "lab_left_empty",
           "lab_master", "lab_hosts", "lab_hosts_module", "qmail_source", "QmailSource",
           "source_or_skip"]


@pytest.fixture(scope="session")
def salt_factories_default_root_dir():
    """A root dir of this session's own for saltfactories (overrides its fixture).

    Its default is /tmp itself, where concurrent test runs rewrite each
    other's generated CLI scripts (/tmp/scripts) while they run.
    """
    root = pathlib.Path(tempfile.mkdtemp(prefix="qmail-lab-sf-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def event_listener():
    """saltfactories' event listener, on loopback only (overrides its fixture)."""
    with loopback_event_listener() as listener:
        yield listener


@pytest.fixture(scope="session")
def lab():
    """The lab network (its base image built or cached), what older recipes
    left pruned. The other images are built when a host first needs them,
    so that a module on base hosts need not wait for the sendmail image
    (lab.prebuild may be making it in the background)."""
    reason = lab_podman.available()
    if reason:
        pytest.fail(f"lab tests need podman here: {reason}. "
                    "Install it, or deselect these tests with -m 'not lab'.", pytrace=False)
    image.prune()
    with Lab() as the_lab:
        yield the_lab


@pytest.fixture(scope="module", autouse=True)
def lab_left_empty(request, lab):
    """After each lab module: no host of it is left in the worker's lab (the
    next module may name the same hosts). One that is left is removed, and
    the module that left it fails its teardown, named."""
    yield
    left = list(lab.hosts.values())
    if left:
        lab.remove_hosts(left)
        pytest.fail(f"{request.module.__name__} left hosts in the lab: "
                    f"{sorted(h.fqdn for h in left)}", pytrace=False)


@pytest.fixture(scope="session")
def lab_master(lab, salt_factories):
    """A salt-master for the lab hosts (top.sls: qmail for '*')."""
    master = LabMaster(lab, factories=salt_factories)
    with master:
        yield master


@contextlib.contextmanager
def _host_factory(master: LabMaster):
    started = []

    def start(fqdns, image: str = "base", pillars: dict | None = None,
              release: str | dict[str, str] | None = None, ipv6: bool = False):
        hosts = master.start_hosts(list(fqdns), image=image, pillars=pillars, release=release,
                                   ipv6=ipv6)
        started.extend(hosts)
        return hosts

    try:
        yield start
    finally:
        master.remove_hosts(started)


@pytest.fixture
def lab_hosts(lab_master):
    """Factory of fresh hosts with minions up; removed after the test."""
    with _host_factory(lab_master) as start:
        yield start


@pytest.fixture(scope="module")
def lab_hosts_module(lab_master):
    """Factory of fresh hosts with minions up; removed after the module."""
    with _host_factory(lab_master) as start:
        yield start


def source_or_skip(preset: str = lab_source.DEFAULT_PRESET) -> QmailSource:
    """The real source of ``preset`` (lab.source.locate), or skip saying why
    there is none."""
    try:
        return lab_source.locate(preset)
    except lab_source.SourceUnavailable as exc:
        pytest.skip(str(exc))
    except lab_source.SourceError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def qmail_source():
    """The default release's real source, or skip saying why there is none."""
    return source_or_skip()
