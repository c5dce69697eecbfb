"""
Watch a host's qmail queue (and, on a spool, its SMTP service) and say on the
event bus when it needs attention and when it has recovered.

Configured in pillar (or the minion config), like every beacon: the limits
and how often to look. What the host is (its qmail home, its role, the port
its qmail-smtpd listens on) the beacon reads from the file ``qmail.service``
writes for it, ``beacon.json`` beside the formula's ledger
(``salt '*' qmail_settings.get beacon:file`` names it), so it always agrees
with what the formula last applied:

.. code-block:: yaml

    beacons:
      qmail_queue:
        - settings: /var/lib/qmail-formula/beacon.json  # written by qmail.service
        - messages: 100     # "backlog" once the queue holds more than this
        - age: 3600         # ... or its oldest message is older (seconds)
        - interval: 30      # seconds between looks (Salt's own option)
        - smtp: true        # also watch qmail-smtpd on 127.0.0.1 (a spool's)

Events, ``salt/beacon/<minion id>/qmail_queue/<what>``, each with
``messages``, ``oldest_age`` (seconds, 0 when empty), ``state`` and the
host's ``role`` (the merged ``qmail:role``, the default included):

``backlog``
    the queue went over a limit (also on the first look after the minion
    starts, when it already is);
``drained``
    the queue is back within both limits after a backlog;
``smtp_down`` / ``up``
    (``smtp: true``, on a host that runs qmail-smtpd) the local SMTP
    service stopped answering ``220`` / answers again; ``up`` is also sent
    on the first look after the minion starts, so a spool that comes back
    (reboot, restart) says so. The reactor example
    ``qmail/files/reactor/flush-clients.sls`` makes every client
    retry its queue at once on that event.

Counting reads ``<home>/queue/mess`` (one file per message, as
qmail-qstat counts them), with no process started: cheap enough to run
every few seconds. Until the formula has written the settings file (or
when it cannot be read) the beacon says nothing, as for a host without a
queue.
"""

import json
import logging
import os
import socket
import time

import salt.utils.beacons

log = logging.getLogger(__name__)

__virtualname__ = "qmail_queue"

SMTP_TIMEOUT = 5

# Last seen state per beacon name: {"backlog": bool, "smtp": bool | None}.
# Kept for the life of the minion's beacon loader (a pillar refresh starts a
# new one: the next look counts as a first look again).
_LAST = {}


def __virtual__():
    return __virtualname__


def _non_negative_int(config, key):
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"beacons:qmail_queue:{key}: {value!r} is not a whole number >= 0"
    return None


def _salt_options(config):
    """
    Salt's own options, as its beacon loop uses them: ``interval`` in
    seconds (compared with ``loop_interval`` times a counter: a number, not
    ``"30s"``), ``run_once`` and ``disable_during_state_run`` true/false.
    An error here would otherwise surface as a TypeError in the minion's
    loop, naming nothing.
    """
    interval = config.get("interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(
            interval, (int, float)) or not 0 < interval < 2**31):
        return f"beacons:qmail_queue:interval: {interval!r} is not a number of seconds > 0"
    for key in ("run_once", "disable_during_state_run"):
        if not isinstance(config.get(key, False), bool):
            return f"beacons:qmail_queue:{key}: {config[key]!r} is not true/false"
    return None


def validate(config):
    """
    Check the beacon's configuration: a list of one-key mappings with the
    absolute path of the formula's ``settings`` file, ``messages`` and/or
    ``age`` (whole numbers >= 0), a true/false ``smtp`` and Salt's own
    options as Salt needs them.
    """
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "beacons:qmail_queue: must be a list of one-key mappings"
    config = salt.utils.beacons.list_to_dict(config)
    known = {"settings", "messages", "age", "smtp"}
    salt_own = {"interval", "run_once", "disable_during_state_run", "beacon_module",
                "_beacon_name"}
    error = _salt_options(config)
    if error:
        return False, error
    unknown = sorted(set(config) - known - salt_own)
    if set(unknown) & {"home", "port"}:
        return False, ("beacons:qmail_queue: home and port are no options any more: the "
                       "beacon reads them from the formula's settings file (option settings)")
    if unknown:
        return False, f"beacons:qmail_queue: unknown option(s) {unknown}; known: {sorted(known)}"
    settings = config.get("settings")
    if not isinstance(settings, str) or not os.path.isabs(settings) or "\n" in settings:
        return False, (f"beacons:qmail_queue:settings: {settings!r} is not an absolute path "
                       "(the file qmail.service writes: qmail_settings.get beacon:file)")
    if "messages" not in config and "age" not in config:
        return False, "beacons:qmail_queue: give messages and/or age"
    for key in ("messages", "age"):
        error = _non_negative_int(config, key)
        if error:
            return False, error
    if not isinstance(config.get("smtp", False), bool):
        return False, f"beacons:qmail_queue:smtp: {config['smtp']!r} is not true/false"
    return True, "Valid beacon configuration"


def _queue(home, now):
    """(messages, age of the oldest in seconds) from ``<home>/queue/mess``."""
    count = 0
    oldest = None
    mess = os.path.join(home, "queue", "mess")
    for split in os.scandir(mess):
        if not split.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(split.path):
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:  # delivered while we looked
                continue
            count += 1
            oldest = mtime if oldest is None else min(oldest, mtime)
    return count, 0 if oldest is None else max(0, int(now - oldest))


def _smtp_answers(port):
    """True when 127.0.0.1:``port`` greets with 220 (qmail-smtpd's greeting)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=SMTP_TIMEOUT) as conn:
            conn.settimeout(SMTP_TIMEOUT)
            greeting = conn.recv(512)
            conn.sendall(b"QUIT\r\n")
    except OSError:
        return False
    return greeting.startswith(b"220")


def _host(path):
    """
    What the formula says this host is (``qmail.service`` writes ``path``):
    ``{"home", "role", "smtpd_port"}``, the port null on a host that runs
    no qmail-smtpd. None when the file is missing or not of that shape.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            host = json.load(handle)
    except (OSError, ValueError) as exc:
        log.debug("qmail_queue beacon: no settings in %s: %s", path, exc)
        return None
    if not (isinstance(host, dict) and isinstance(host.get("home"), str)
            and os.path.isabs(host["home"]) and isinstance(host.get("role"), str)
            and (host.get("smtpd_port") is None or isinstance(host["smtpd_port"], int))):
        log.warning("qmail_queue beacon: %s is not the formula's settings file", path)
        return None
    return host


def beacon(config):
    """
    Look at the queue (and SMTP, with ``smtp: true``); return the events due.

    .. code-block:: yaml

        beacons:
          qmail_queue:
            - settings: /var/lib/qmail-formula/beacon.json
            - messages: 100
            - age: 3600
            - interval: 30
    """
    config = salt.utils.beacons.list_to_dict(config)
    name = config.get("_beacon_name", __virtualname__)
    host = _host(config["settings"])
    if host is None:  # the formula has not set this host up (yet)
        return []
    home = host["home"]
    try:
        messages, age = _queue(home, time.time())
    except OSError as exc:  # qmail not installed (yet): nothing to watch
        log.debug("qmail_queue beacon: no queue under %s: %s", home, exc)
        return []
    limit_messages = config.get("messages")
    limit_age = config.get("age")
    backlog = (limit_messages is not None and messages > limit_messages) or (
        limit_age is not None and age > limit_age)
    # smtp is an opt-in: no option, no watching (and a host without
    # qmail-smtpd has nothing to watch).
    port = host["smtpd_port"]
    smtp = _smtp_answers(port) if config.get("smtp") and port is not None else None

    last = _LAST.get(name, {"backlog": False, "smtp": None})
    _LAST[name] = {"backlog": backlog, "smtp": smtp}

    data = {"messages": messages, "oldest_age": age, "role": host["role"],
            "state": "backlog" if backlog else "ok"}
    events = []
    if backlog and not last["backlog"]:
        events.append({"tag": "backlog", **data})
    elif last["backlog"] and not backlog:
        events.append({"tag": "drained", **data})
    if smtp is not None and smtp != last["smtp"]:
        if smtp:
            events.append({"tag": "up", **data, "smtp": True})
        else:
            events.append({"tag": "smtp_down", **data, "smtp": False})
    if events:
        log.info("qmail_queue beacon: %s", ", ".join(e["tag"] for e in events))
    return events
