"""
Neutralise the OS's sendmail and put qmail's front end in its place (the
seed's §2 and §3), reversibly: the steps, each with its undo beside it.

Every step first saves what it is about to change in the undo journal
(``_utils/qmail_undo.py``; lookup ``sendmail_journal``), then changes it:

- ``stop``: stop sendmail's processes, through the service manager and then
  by signal (Debian's init script can leave ``sendmail-mta`` running);
- ``boot_disable``: keep it from starting at boot (``rcconf``: FreeBSD's
  /etc/rc.conf; ``sysconfig``: /etc/sysconfig/sendmail ``DAEMON=NO``;
  ``irix``: /etc/config/sendmail ``off``; ``chkconfig``: ``chkconfig --del``;
  ``systemd``/``sysv``: Salt's service module, which handles Debian's SysV
  script too);
- ``neutralise``: ``chmod 0`` the real binary behind a path (symlinks and
  alternatives resolved) and rename it to ``<binary>.bak``, never overwriting
  an existing ``.bak``;
- ``link_frontend``: point a path (``/usr/sbin/sendmail``,
  ``/usr/lib/sendmail``) to qmail's ``bin/sendmail``;
- ``alternative``: register and select qmail in an alternatives group
  (RedHat's ``mta``);
- ``mailer_conf``: FreeBSD's /etc/mail/mailer.conf entries.

``restore`` undoes all of it from the journal, step by step: the boot
methods are ``_utils/qmail_boot.py``, the binary, links and mailer.conf
``_utils/qmail_sendmail_paths.py``, the alternatives groups
``_utils/qmail_alternatives.py`` (each with its undo beside it); ``status``
is what a sysadmin checks. Every function takes ``test=True`` to predict
its changes without touching anything. Arguments are checked with the shared validators
(``_utils/qmail_validate.py``); processes and listeners are found by
``_utils/qmail_procs.py``, rc.conf-style files edited by
``_utils/qmail_keyfile.py``.
"""

import functools
import logging
import os
import signal
import time
import types

import salt.utils.path
import salt.utils.systemd
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_sendmail"

# How long a sendmail process gets to exit after SIGTERM.
STOP_TIMEOUT = 10


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _setting(key):
    """The formula's own setting (``qmail_settings.get``) for an argument the
    caller left out: the states pass every one, the defaults serve the CLI
    and live in parameters/ only."""
    return __salt__["qmail_settings.get"](key)


def _journal(journal):
    return _v("path")(journal or _setting("sendmail:journal"), "journal")


def _ports(ports):
    return set(_v("each")(_setting("lookup:sendmail_ports") if ports is None else ports,
                          "ports", "integer", 1, 65535))


# --------------------------------------------------------------------------
# The undo journal (_utils/qmail_undo.py) and the system files the steps
# rewrite; _utils modules get no __utils__ from the loader: the writer goes
# with each call
# --------------------------------------------------------------------------
def _save(journal, section, key, value):
    return __utils__["qmail_undo.save"](journal, section, key, value,
                                        __utils__["qmail_files.atomic_write"])


def _forget(journal, section, key):
    __utils__["qmail_undo.forget"](journal, section, key, __utils__["qmail_files.atomic_write"])


def _write_text(path, text):
    """rc.conf, sysconfig, mailer.conf: latin-1 (any byte round-trips), the
    file's mode and owner kept, a symlink left a symlink."""
    __utils__["qmail_files.rewrite"](path, text.encode("latin-1"))


def _tools(journal):
    """What the steps in ``_utils`` (``qmail_sendmail_paths``, ``qmail_boot``,
    ``qmail_alternatives``) need from the loader, resolved here: they run
    outside this module's loader context."""
    utils = {name: __utils__[name] for name in (
        "qmail_undo.save", "qmail_undo.forget", "qmail_files.atomic_write",
        "qmail_files.rewrite", "qmail_files.fsync_dir", "qmail_files.atomic_symlink",
        "qmail_keyfile.read")}
    writer = utils["qmail_files.atomic_write"]
    return types.SimpleNamespace(
        save=lambda section, key, value: utils["qmail_undo.save"](
            journal, section, key, value, writer),
        forget=lambda section, key: utils["qmail_undo.forget"](journal, section, key, writer),
        read=utils["qmail_keyfile.read"],
        write_text=lambda path, text: utils["qmail_files.rewrite"](
            path, text.encode("latin-1")),
        fsync_dir=utils["qmail_files.fsync_dir"],
        atomic_symlink=utils["qmail_files.atomic_symlink"],
        alternative=functools.partial(__utils__["qmail_alternatives.display"],
                                      run_all=__salt__["cmd.run_all"]))


def _paths(name):
    """A function of ``_utils/qmail_sendmail_paths.py``."""
    return __utils__[f"qmail_sendmail_paths.{name}"]


def read_journal(journal=None):
    """
    Return what the formula saved before changing sendmail (an empty journal
    when nothing was saved). ``journal``: the formula's
    ``lookup:sendmail_journal`` when left out.

    CLI Example::

        salt '*' qmail_sendmail.read_journal
        salt '*' qmail_sendmail.read_journal /var/lib/qmail-formula/sendmail.json
    """
    return __utils__["qmail_undo.read"](_journal(journal))


# --------------------------------------------------------------------------
# Processes: stop, and start again
# --------------------------------------------------------------------------
def _service_available(service):
    try:
        return bool(__salt__["service.available"](service))
    except (KeyError, CommandExecutionError):
        return False


def _binaries(paths, journal, frontend, also=()):
    """Every file a sendmail process may run from: the real files behind
    ``paths``, the binaries saved in the journal, and their ``.bak``; never
    one of qmail's front ends (``frontend``, ``also``)."""
    fronts = {os.path.realpath(f) for f in ([frontend] if frontend else []) + list(also)}
    found = set()
    for path in paths:
        real = os.path.realpath(path)
        if real not in fronts:
            found.update((real, real + ".bak"))
    for real in read_journal(journal)["binaries"] if journal else ():
        found.update((real, real + ".bak"))
    return found


def listeners(ports=None):
    """
    Return the processes listening on TCP ``ports``: a list of
    ``{port, pid, comm, exe}`` (psutil).

    CLI Example::

        salt '*' qmail_sendmail.listeners '[25, 587]'
    """
    return __utils__["qmail_procs.listeners"](_ports(ports))


def processes(paths, ports=None, journal=None, frontend=None, also=()):
    """
    Return the running sendmail processes: those running one of the files
    behind ``paths`` (or their saved ``.bak``), and those named ``sendmail*``
    whose program cannot be read (a set-id program such as Debian's
    setgid sendmail is not dumpable: without CAP_SYS_PTRACE, e.g. in a
    container, even root cannot read its /proc/PID/exe) or that listen on
    ``ports``. A list of ``{pid, comm, exe}`` (exe None when unreadable).

    CLI Example::

        salt '*' qmail_sendmail.processes '[/usr/sbin/sendmail, /usr/lib/sendmail]'
    """
    paths = _v("each")(paths, "paths", "system_file")
    ports = _ports(ports)
    journal = _v("optional")(journal, "journal", "path")
    frontend = _v("optional")(frontend, "frontend", "path")
    also = _v("each")(also, "also", "path")
    return __utils__["qmail_procs.programs"](_binaries(paths, journal, frontend, also),
                                             "sendmail",
                                             ports, __salt__["cmd.run_stdout"])


def stop(services, paths, ports=None, journal=None, frontend=None, test=False, also=()):
    """
    Stop every sendmail process: ask the service manager to stop
    ``services`` first, then send SIGTERM to what is left, SIGKILL after
    STOP_TIMEOUT seconds. The services that ran are saved in ``journal`` (so
    that ``restore`` starts them again). Returns the changes (empty when
    nothing ran).

    CLI Example::

        salt '*' qmail_sendmail.stop '[sendmail]' '[/usr/sbin/sendmail]'
    """
    services = _v("each")(services, "services", "service_name")
    journal = _journal(journal)
    running = processes(paths, ports, journal, frontend, also)
    if not running:
        return {}
    changes = {"processes": {"old": [f"{p['pid']} {p['comm']}" for p in running],
                             "new": []}}
    if test:
        return changes
    available = [s for s in services if _service_available(s)]
    # What restore starts again: the services that were active, else (a
    # daemon started by hand) the first one, the main daemon.
    active = [s for s in available if __salt__["service.status"](s)]
    _save(journal, "stopped", "services", active or available[:1])
    for service in available:
        try:
            __salt__["service.stop"](service)
        except CommandExecutionError:
            pass  # the processes are checked below in any case
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p["pid"] for p in processes(paths, ports, journal, frontend, also)]
        for pid in left:
            # SIGKILL means sendmail ignored SIGTERM for STOP_TIMEOUT seconds:
            # worth a warning in the minion's log.
            log.log(logging.WARNING if sig == signal.SIGKILL else logging.INFO,
                    "qmail_sendmail: %s to sendmail process %s", sig.name, pid)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if __utils__["qmail_procs.alive"](pid)]
            time.sleep(0.1)
        if not left:
            break
    left = processes(paths, ports, journal, frontend, also)
    if left:
        raise CommandExecutionError(
            "sendmail still runs after SIGKILL: "
            + ", ".join(f"{p['pid']} {p['comm']}" for p in left))
    return changes


def _restore_services(journal, data, test):
    services = data["stopped"].get("services")
    if services is None:
        return {}
    changes = {}
    for service in services:
        if not _service_available(service):
            continue
        if __salt__["service.status"](service):
            continue
        changes[service] = {"old": "stopped", "new": "started"}
        if not test:
            __salt__["service.start"](service)
    if not test:
        _forget(journal, "stopped", "services")
    return changes


# --------------------------------------------------------------------------
# Boot
# --------------------------------------------------------------------------
def set_keys(text, wanted):
    """
    Return ``text`` (a shell-style ``key=value`` file such as rc.conf) with
    every assignment of each key in ``wanted`` (key -> ``key=value``)
    replaced by that assignment, or the line appended when the key is not
    set. Only the assignment changes: other statements on the same line
    (``sendmail_enable="YES"; sshd_enable="YES"``) and every other line stay
    byte for byte. Also returns, per key, the assignments it replaced.

    CLI Example::

        salt '*' qmail_sendmail.set_keys text='sendmail_enable="YES"' \\
            wanted='{sendmail_enable: sendmail_enable="NO"}'
    """
    if text is not None and not isinstance(text, str):
        _v("fail")("text", f"expected a string, got {_v('type_name')(text)}")
    for key, assignment in _v("mapping")(wanted, "wanted").items():
        _v("matches")(key, f"wanted:{key}", r"[A-Za-z_][A-Za-z0-9_]*", "a shell variable name")
        _v("string")(assignment, f"wanted:{key}")
    return __utils__["qmail_keyfile.set_keys"](text, wanted)


def _boot(method, journal):
    """The boot method ``method`` (``_utils/qmail_boot.py``), chosen once,
    with the functions it needs from the loader; it saves what it changes
    in ``journal``."""
    common = _tools(journal)
    tools = types.SimpleNamespace(
        run_all=__salt__["cmd.run_all"], write_text=common.write_text,
        read=common.read, set_keys=__utils__["qmail_keyfile.set_keys"],
        unset_keys=__utils__["qmail_keyfile.unset_keys"],
        service={what: __salt__.get(f"service.{what}") or _no_service
                 for what in ("available", "enabled", "enable", "disable")},
        save=lambda key, record: common.save("boot", key, record),
        booted=salt.utils.systemd.booted(__context__), which=salt.utils.path.which)
    return __utils__["qmail_boot.method"](method, tools)


def _no_service(service):
    raise CommandExecutionError(f"no service module here for {service}")


def boot_disable(method, services=(), path=None, journal=None, test=False):
    """
    Keep sendmail from starting at boot, the way ``method`` says:

    - ``rcconf``: ``path`` (/etc/rc.conf) gets ``sendmail_enable``,
      ``sendmail_submit_enable``, ``sendmail_outbound_enable`` and
      ``sendmail_msp_queue_enable`` = ``"NO"``; other lines stay as they are
      (/etc/defaults/rc.conf is never edited);
    - ``sysconfig``: ``path`` (/etc/sysconfig/sendmail) ``DAEMON=NO``;
    - ``irix``: ``path`` (/etc/config/sendmail) ``off``;
    - ``chkconfig``: ``chkconfig --del`` each of ``services``;
    - ``systemd``, ``sysv``: disable each of ``services`` through Salt's
      service module (systemd units, or SysV scripts via update-rc.d);
      where systemd does not run, ``systemd`` falls back to ``chkconfig``.

    Each method is a class of ``_utils/qmail_boot.py``. What was there is
    saved in ``journal`` first. Returns the changes.

    CLI Example::

        salt '*' qmail_sendmail.boot_disable rcconf path=/etc/rc.conf
        salt '*' qmail_sendmail.boot_disable systemd '[sendmail, sm-client]'
    """
    _v("one_of")(method, __utils__["qmail_boot.names"](), "method")
    services = _v("each")(services, "services", "service_name")
    journal = _journal(journal)
    boot = _boot(method, journal)
    if boot.edits_file:
        return boot.disable([_v("system_file")(path, "path")], test)
    return boot.disable(services, test)


def _restore_boot(journal, data, test):
    changes = {}
    for key, saved in sorted(data["boot"].items()):
        changes.update(_boot(saved["method"], journal).restore(key, saved, test))
        if not test:
            _forget(journal, "boot", key)
    return changes


# --------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------
def neutralise(path, frontend, journal=None, sendmail_paths=(), test=False, also=()):
    """
    ``chmod 0`` the sendmail binary behind ``path`` (symlinks and
    alternatives resolved to the real file) and rename it to
    ``<real file>.bak``, as the seed does. Nothing happens when ``path``
    leads to qmail (``frontend``) already, when only the ``.bak`` is left
    (done before), or when there is no sendmail there. An existing ``.bak``
    is never overwritten: that is an error to settle by hand. The file's
    mode, owner and sha256 are saved in ``journal`` first. In test mode, a
    file that a path listed before ``path`` in ``sendmail_paths`` leads to
    counts as moved already. ``also``: qmail's other front ends (a path
    leading to one is left alone too).

    CLI Example::

        salt '*' qmail_sendmail.neutralise /usr/sbin/sendmail /var/qmail/bin/sendmail
    """
    path = _v("system_file")(path, "path")
    frontend = _v("path")(frontend, "frontend")
    also = _v("each")(also, "also", "path")
    sendmail_paths = _v("each")(sendmail_paths, "sendmail_paths", "system_file")
    journal = _journal(journal)
    return _paths("neutralise")(_tools(journal), path, frontend, sendmail_paths, test, also)


# --------------------------------------------------------------------------
# The front end's links
# --------------------------------------------------------------------------
def link_frontend(path, frontend, journal=None, sendmail_paths=(), links=(),
                  alternative_links=(), test=False):
    """
    Make ``path`` (e.g. /usr/sbin/sendmail) a symlink to qmail's front end
    ``frontend``. A path that leads there already (also through
    alternatives) is left alone; a regular file is never replaced (neutralise
    it first). The old link target (or its absence) is saved in ``journal``.
    In test mode, a file behind one of ``sendmail_paths`` counts as moved
    away already, as ``neutralise`` would do it first, and the ``links``
    listed before ``path`` and the ``alternative_links`` (set to qmail by
    the ``alternative`` step) as made.

    CLI Example::

        salt '*' qmail_sendmail.link_frontend /usr/lib/sendmail /var/qmail/bin/sendmail
    """
    path = _v("system_file")(path, "path")
    frontend = _v("path")(frontend, "frontend")
    sendmail_paths = _v("each")(sendmail_paths, "sendmail_paths", "system_file")
    links = _v("each")(links, "links", "system_file")
    alternative_links = _v("each")(alternative_links, "alternative_links", "system_file")
    journal = _journal(journal)
    if os.path.lexists(path) and _paths("is_qmail")(path, frontend):
        return {}
    links = list(links)
    made_before = links[:links.index(path)] if path in links else []
    if test and _paths("would_lead_to_qmail")(path, frontend,
                                              made_before + list(alternative_links)):
        return {}
    to_neutralise = {os.path.realpath(p) for p in sendmail_paths}
    if test and os.path.isfile(path) and not os.path.islink(path) and (
            os.path.realpath(path) in to_neutralise):
        return {path: {"old": None, "new": frontend}}
    if os.path.lexists(path) and not os.path.islink(path):
        raise CommandExecutionError(
            f"{path} is a file, not a link; not replacing it (list it in "
            "qmail:lookup:sendmail_paths so that it is kept as .bak first)")
    if not os.path.isdir(os.path.dirname(path)):
        raise CommandExecutionError(f"{os.path.dirname(path)} does not exist")
    old = os.readlink(path) if os.path.islink(path) else None
    changes = {path: {"old": old, "new": frontend}}
    if not test:
        _save(journal, "links", path, {"target": old})
        __utils__["qmail_files.atomic_symlink"](frontend, path)
    return changes


# --------------------------------------------------------------------------
# Alternatives (RedHat's mta)
# --------------------------------------------------------------------------
def _alt(name):
    """A function of ``_utils/qmail_alternatives.py``."""
    return __utils__[f"qmail_alternatives.{name}"]


def alternative_status(name):
    """
    Return the alternatives group ``name`` as ``--display`` shows it (the
    same on Debian and RedHat): ``mode`` (auto/manual), ``current`` choice,
    master ``link``, ``slave_links`` (slave name -> link), and
    ``alternatives`` (path -> ``{priority, slaves: {name: path}}``); None
    when the group does not exist.

    CLI Example::

        salt '*' qmail_sendmail.alternative_status mta
    """
    _v("matches")(name, "name", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "an alternatives group name")
    return _alt("display")(name, __salt__["cmd.run_all"])


def alternative(name, link, frontend, priority, slaves=(), journal=None, test=False):
    """
    Register qmail's ``frontend`` in alternatives group ``name`` (master
    ``link``, ``slaves`` a list of ``{name, link, target}``) and select it.
    The group's mode and choice before are saved in ``journal``.

    CLI Example::

        salt '*' qmail_sendmail.alternative mta /usr/sbin/sendmail /var/qmail/bin/sendmail 120
    """
    link = _v("system_file")(link, "link")
    frontend = _v("path")(frontend, "frontend")
    priority = _v("integer")(priority, "priority", 0, 2**31 - 1)
    slaves = _v("each")(slaves, "slaves", "fields", ("name", "link", "target"))
    for i, slave in enumerate(slaves):
        _v("system_file")(slave["link"], f"slaves[{i}]:link")
        _v("path")(slave["target"], f"slaves[{i}]:target")
    journal = _journal(journal)
    status = alternative_status(name)
    if status and status["current"] == frontend and status["mode"] == "manual":
        return {}
    changes = {name: {"old": _alt("choice")(status),
                      "new": {"mode": "manual", "current": frontend}}}
    if test:
        return changes
    # The whole group is saved: once sendmail's file is moved away,
    # update-alternatives drops its entry, and restore installs it again.
    _save(journal, "alternatives", name, {
        "status": status, "path": frontend, "link": link,
        "slave_links": {s["name"]: s["link"] for s in slaves}})
    run_all = __salt__["cmd.run_all"]
    _alt("install")(run_all, name, link, frontend, priority,
                    [(s["link"], s["name"], s["target"]) for s in slaves])
    _alt("run")(run_all, "--set", name, frontend)
    return changes


# --------------------------------------------------------------------------
# FreeBSD mailer.conf
# --------------------------------------------------------------------------
def mailer_conf(path, frontend, qread, journal=None, test=False):
    """
    Point mailer.conf(5)'s ``sendmail`` and ``send-mail`` to qmail's
    ``frontend`` and ``mailq`` to ``qread`` (qmail-qread); other lines stay
    byte for byte. The file as it was is saved in ``journal``.

    CLI Example::

        salt '*' qmail_sendmail.mailer_conf /etc/mail/mailer.conf \\
            /var/qmail/bin/sendmail /var/qmail/bin/qmail-qread
    """
    path = _v("system_file")(path, "path")
    frontend = _v("path")(frontend, "frontend")
    qread = _v("path")(qread, "qread")
    journal = _journal(journal)
    old = __utils__["qmail_keyfile.read"](path)
    new = _paths("mailer_conf_text")(old, frontend, qread)
    if new == old:
        return {}
    changes = {path: {"old": old, "new": new}}
    if not test:
        _save(journal, "mailer_conf", path, {"content": old})
        _write_text(path, new)
    return changes


# --------------------------------------------------------------------------
# All of it undone, and what a sysadmin checks
# --------------------------------------------------------------------------
def restore(journal=None, test=False):
    """
    Undo what the formula did to sendmail, from ``journal``, in reverse
    order: the links, mailer.conf, the binary (from ``.bak``, with its mode
    and owner), the alternatives group (qmail out, sendmail's entry back,
    the old mode and choice), the boot setting, then start the services
    that ran before. The journal is removed once everything is
    back. Returns the changes by step.

    CLI Example::

        salt '*' qmail_sendmail.restore /var/lib/qmail-formula/sendmail.json
    """
    journal = _journal(journal)
    data = read_journal(journal)
    changes = {}
    # The binaries come back before the alternatives that point to them.
    tools = _tools(journal)
    steps = (
        ("links", functools.partial(_paths("restore_links"), tools)),
        ("mailer_conf", functools.partial(_paths("restore_mailer_conf"), tools)),
        ("binaries", functools.partial(_paths("restore_binaries"), tools)),
        ("alternatives", functools.partial(__utils__["qmail_alternatives.restore"],
                                           __salt__["cmd.run_all"], tools)),
        ("boot", functools.partial(_restore_boot, journal)),
        ("services", functools.partial(_restore_services, journal)))
    for step, func in steps:
        step_changes = func(data, test)
        if step_changes:
            changes[step] = step_changes
    return changes


def status(paths=None, ports=None, frontend=None, journal=None, queues=None):
    """
    What a sysadmin checks: where each of ``paths`` leads, the running
    sendmail processes, what listens on ``ports``, the saved journal, and
    sendmail's ``queues`` (``qmail_mqueue.status``: messages left there and
    why).

    CLI Example::

        salt '*' qmail_sendmail.status
    """
    paths = _v("each")(paths or _setting("lookup:sendmail_paths"), "paths", "system_file")
    frontend = _v("path")(frontend or _setting("sendmail:frontend"), "frontend")
    also = _setting("sendmail:also")
    journal = _journal(journal)
    return {
        "paths": {p: {"leads_to": os.path.realpath(p),
                      "qmail": _paths("is_qmail")(p, frontend, also)} for p in paths},
        "processes": processes(paths, ports, journal, frontend, also),
        "listeners": listeners(ports),
        "journal": read_journal(journal),
        # sendmail's queues: messages not (yet) handed over to qmail.
        "queues": __salt__["qmail_mqueue.status"](queues),
    }
