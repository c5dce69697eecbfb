"""
lab/salt_speedups.py and the lab masters' lab/master_site: the remedies are
installed where they are meant to be, and the ``salt`` command's wait for
returns takes the bus's events as they come.
"""

import os
import subprocess
import sys

from lab import salt_speedups
from lab.master import _with_speedups

SITE = os.path.join(os.path.dirname(salt_speedups.__file__), "master_site")


def test_a_lab_master_gets_the_site_first_and_keeps_its_pythonpath():
    env = _with_speedups({"PATH": "/usr/bin", "PYTHONPATH": "/a:/b"})
    assert env == {"PATH": "/usr/bin", "PYTHONPATH": os.pathsep.join([SITE, "/a", "/b"])}
    assert _with_speedups({})["PYTHONPATH"] == SITE


def test_a_python_started_as_a_lab_master_lists_salts_folders_once():
    """What the master's processes run at start: the listing is the cached one."""
    probe = ("import salt.loader.lazy as l, salt.utils.optsdict as o; "
             "print(l.LazyLoader._refresh_file_mapping.__name__, '__bool__' in vars(o.OptsDict))")
    env = _with_speedups({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["refresh_once", "True"]


class _Bus:
    """An event bus with two events queued, then nothing."""

    def __init__(self):
        self.events = [{"tag": "salt/job/1/ret/a"}, {"tag": "salt/job/1/ret/b"}]
        self.asked = []

    def get_event(self, **kwargs):
        self.asked.append(kwargs)
        return self.events.pop(0) if self.events else None

    def destroy(self):  # LocalClient's __del__ closes its bus
        pass


def test_the_salt_command_waits_on_the_bus_and_takes_each_event_as_it_comes():
    import salt.client

    salt_speedups.install_client()
    client = salt.client.LocalClient.__new__(salt.client.LocalClient)
    client.event, client.auto_reconnect = _Bus(), False
    got = salt.client.LocalClient.get_returns_no_block(client, "salt/job/1")
    assert [next(got) for _ in range(3)] == [{"tag": "salt/job/1/ret/a"},
                                             {"tag": "salt/job/1/ret/b"}, None]
    assert client.event.asked == [{"wait": salt_speedups.RETURN_WAIT, "tag": "salt/job/1",
                                   "match_type": None, "full": True, "no_block": False,
                                   "auto_reconnect": False}] * 3
