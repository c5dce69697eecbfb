"""
The qmail_queue beacon, loaded by Salt's own beacon loader, against a real
queue folder laid out as qmail's (``queue/mess/<split>/<inode>``) and a real
SMTP listener on loopback: the events a sysadmin's reactor would see. What
the host is (home, role, qmail-smtpd's port) comes from the settings file
the formula writes, never from the pillar.
"""

import json
import os
import pathlib
import socket
import threading
import time

import pytest
import salt.loader

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def beacons(minion_opts, loaders):
    # A pillar that says otherwise than the settings file: the beacon must
    # not read it.
    opts = dict(minion_opts, beacons_dirs=[str(REPO / "_beacons")],
                pillar={"qmail": {"role": "spool", "lookup": {"home": "/nowhere"}}})
    loader = salt.loader.beacons(opts, loaders.modules)
    yield loader
    loader["qmail_queue.beacon"].__globals__["_LAST"].clear()


@pytest.fixture
def home(tmp_path):
    for split in range(3):
        (tmp_path / "queue" / "mess" / str(split)).mkdir(parents=True)
    return tmp_path


def queue(home, count, age=0):
    """Put ``count`` messages into the queue, the first ``age`` seconds old."""
    for n in range(count):
        path = home / "queue" / "mess" / str(n % 3) / str(1000 + n)
        path.write_text("message\n")
        if n == 0 and age:
            then = time.time() - age
            os.utime(path, (then, then))


def drain(home):
    for path in (home / "queue" / "mess").glob("*/*"):
        path.unlink()


def settings(home, role="client", port=None):
    """The file qmail.service writes for the beacon (qmail_settings: beacon)."""
    path = home / "beacon.json"
    path.write_text(json.dumps({"home": str(home), "role": role, "smtpd_port": port}))
    return path


def look(beacons, home, role="client", port=None, **options):
    config = [{"settings": str(settings(home, role, port))},
              *({k: v} for k, v in options.items()), {"_beacon_name": "qmail_queue"}]
    return beacons["qmail_queue.beacon"](config)


def tags(events):
    return [event["tag"] for event in events]


def test_backlog_by_count_then_drained_once(beacons, home):
    assert look(beacons, home, messages=2) == []
    queue(home, 3)
    (event,) = look(beacons, home, messages=2)
    assert event["tag"] == "backlog"
    assert event["messages"] == 3 and event["state"] == "backlog"
    assert event["role"] == "client"
    assert look(beacons, home, messages=2) == []  # said once, not every look
    drain(home)
    (event,) = look(beacons, home, messages=2)
    assert (event["tag"], event["messages"], event["oldest_age"]) == ("drained", 0, 0)
    assert look(beacons, home, messages=2) == []


def test_backlog_by_age_of_the_oldest_message(beacons, home):
    queue(home, 1, age=7200)
    (event,) = look(beacons, home, age=3600)
    assert event["tag"] == "backlog"
    assert 7200 <= event["oldest_age"] < 7300


def test_a_backlog_is_reported_on_the_first_look(beacons, home):
    queue(home, 5)
    assert tags(look(beacons, home, messages=0)) == ["backlog"]


def test_no_queue_no_events(beacons, tmp_path):
    (tmp_path / "nothing").mkdir()
    assert look(beacons, tmp_path / "nothing", messages=0) == []


def test_the_role_and_home_come_from_the_formulas_settings_file(beacons, home):
    """The settings file says spool (the default role the formula merged):
    the event says spool, whatever the pillar holds or leaves out."""
    queue(home, 1)
    (event,) = look(beacons, home, role="spool", messages=0)
    assert event["role"] == "spool" and event["messages"] == 1


@pytest.mark.parametrize("text", [None, "not json", '{"home": "relative", "role": "spool"}',
                                  '{"home": "/var/qmail", "role": null}'])
def test_without_the_formulas_settings_no_events(beacons, home, text):
    queue(home, 5)
    path = home / "beacon.json"
    if text is not None:
        path.write_text(text)
    config = [{"settings": str(path)}, {"messages": 0}]
    assert beacons["qmail_queue.beacon"](config) == []


@pytest.fixture
def smtp_server():
    """A loopback listener greeting like qmail-smtpd."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"220 ccs.cla.kobe-u.ac.jp ESMTP\r\n")
                conn.recv(64)

    threading.Thread(target=serve, daemon=True).start()
    yield server
    server.close()


def test_smtp_up_on_first_look_down_and_up_again(beacons, home, smtp_server):
    port = smtp_server.getsockname()[1]
    # A client (no qmail-smtpd in its settings) watches nothing.
    assert look(beacons, home, messages=10, smtp=True) == []
    assert tags(look(beacons, home, messages=10, smtp=True, port=port)) == ["up"]
    assert look(beacons, home, messages=10, smtp=True, port=port) == []
    smtp_server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    smtp_server.close()
    (down,) = look(beacons, home, messages=10, smtp=True, port=port)
    assert down["tag"] == "smtp_down" and down["smtp"] is False
    server = socket.create_server(("127.0.0.1", port))
    try:
        threading.Thread(target=lambda: server.accept()[0].sendall(b"220 hi\r\n"),
                         daemon=True).start()
        (up,) = look(beacons, home, messages=10, smtp=True, port=port)
        assert up["tag"] == "up" and up["smtp"] is True
    finally:
        server.close()


SETTINGS = {"settings": "/var/lib/qmail-formula/beacon.json"}


@pytest.mark.parametrize(("config", "error"), [
    ({"messages": 10}, "must be a list"),
    ([SETTINGS, {"interval": 5}], "give messages and/or age"),
    ([SETTINGS, {"messages": -1}], "beacons:qmail_queue:messages: -1 is not a whole number"),
    ([SETTINGS, {"messages": "10"}], "beacons:qmail_queue:messages: '10'"),
    ([SETTINGS, {"age": True}], "beacons:qmail_queue:age: True"),
    ([{"messages": 1}], "beacons:qmail_queue:settings: None is not an absolute path"),
    ([{"messages": 1}, {"settings": "beacon.json"}],
     "beacons:qmail_queue:settings: 'beacon.json' is not an absolute path"),
    ([SETTINGS, {"messages": 1}, {"home": "/var/qmail"}], "home and port are no options"),
    ([SETTINGS, {"messages": 1}, {"port": 25}], "formula's settings file (option settings)"),
    ([SETTINGS, {"messages": 1}, {"smtp": "yes"}], "beacons:qmail_queue:smtp: 'yes'"),
    ([SETTINGS, {"messages": 1}, {"mesages": 2}], "unknown option(s) ['mesages']"),
    # Salt's own options, with the types its beacon loop needs (issue 19).
    ([SETTINGS, {"messages": 1}, {"interval": "30s"}],
     "beacons:qmail_queue:interval: '30s' is not a number of seconds"),
    ([SETTINGS, {"messages": 1}, {"interval": 0}], "beacons:qmail_queue:interval: 0"),
    ([SETTINGS, {"messages": 1}, {"interval": True}], "beacons:qmail_queue:interval: True"),
    ([SETTINGS, {"messages": 1}, {"run_once": "no"}], "beacons:qmail_queue:run_once: 'no'"),
    ([SETTINGS, {"messages": 1}, "interval"], "must be a list of one-key mappings"),
])
def test_bad_configuration_is_refused_naming_the_option(beacons, config, error):
    valid, comment = beacons["qmail_queue.validate"](config)
    assert valid is False
    assert error in comment


def test_good_configuration_is_accepted(beacons):
    config = [SETTINGS, {"messages": 100}, {"age": 3600}, {"interval": 30}, {"smtp": True}]
    assert beacons["qmail_queue.validate"](config) == (True, "Valid beacon configuration")
    config = [{"settings": "/var/db/qmail-formula/beacon.json"}, {"messages": 100},
              {"interval": 2.5}, {"disable_during_state_run": True}]
    assert beacons["qmail_queue.validate"](config) == (True, "Valid beacon configuration")
