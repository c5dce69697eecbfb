"""
Keep qmail's services running, and tell them of changes the way qmail
needs (qmail-send(8)): HUP for ``locals`` and ``virtualdomains`` (same
PID), a restart for qmail-send's other control files, its run script,
``rc`` or a reinstall, ``qmail-newmrh`` for ``morercpthosts``, nothing for
the files read per message. The same under every supervisor: ``systemd``,
``daemontools`` or the seed's ``bootscript``.

.. code-block:: yaml

    qmail-service-send-running:
      qmail_service.running:
        - name: qmail-send
        - supervisor: systemd
        - home: /var/qmail
        - service_dir: /etc/service
        - daemontools_bin: /usr/bin
        - watch:
          - qmail_control: qmail-control-file-*
          - file: qmail-service-send-run-file-managed

    qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled:
      qmail_service.tcp_rules_compiled:
        - name: /etc/tcp.smtp
        - ucspi_bin: /usr/bin
        - watch:
          - file: qmail-service-smtpd-rules-file-managed

What a watched change calls for is read from its ``changes``: a control
file's state says ``reload: hup|restart|newmrh`` (or nothing, for files
read per message); any other watched change means a restart. ``test=True``
reports the restart or HUP it would do in ``changes`` and sends nothing.
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError
from salt.state import _gen_tag

log = logging.getLogger(__name__)

__virtualname__ = "qmail_service"

SEND = "qmail-send"
SMTPD = "qmail-smtpd"
SMTPSD = "qmail-smtpsd"  # implicit TLS (qmail:tls:smtps)


def __virtual__():
    if "qmail_service.service_pid" in __salt__:
        return __virtualname__
    return (False, "the qmail_service execution module is not available "
                   "(run saltutil.sync_all first)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _fail(ret, exc):
    ret.update(result=False, changes={}, comment=str(exc))
    return ret


def _paths(supervisor, service_dir, daemontools_bin):
    return {"supervisor": supervisor, "service_dir": service_dir,
            "daemontools_bin": daemontools_bin}


def _check_name(name, supervisor):
    if name not in (SEND, SMTPD, SMTPSD):
        raise SaltInvocationError(f"name: {name!r} is not one of {SEND}, {SMTPD}, {SMTPSD}")
    if name != SEND and supervisor == "bootscript":
        raise SaltInvocationError(
            f"{name} has no supervisor with the boot script: inetd runs it")


def _systemd_unit(name):
    if not __salt__["qmail_service.systemd_booted"]():
        raise CommandExecutionError(
            f"supervisor systemd: systemd does not run this host; {name} cannot run under it")
    return __salt__["qmail_service.unit_state"](name)


def _systemctl(verb, name):
    log.info("qmail_service: systemctl %s %s", verb, name)
    proc = __salt__["cmd.run_all"](["systemctl", verb, f"{name}.service"],
                                   python_shell=False, ignore_retcode=True)
    if proc["retcode"]:
        raise CommandExecutionError(
            f"systemctl {verb} {name}.service failed: {proc['stderr'] or proc['stdout']}")


def running(name, supervisor, home, service_dir=None, daemontools_bin=None, enable=True):
    """
    Make sure ``name`` (``qmail-send``, or ``qmail-smtpd`` under tcpserver)
    runs under ``supervisor``; with systemd, also that its unit is enabled
    at boot (daemontools: the service directory's link; bootscript: the boot
    script; both are file states of their own). Watched changes restart or
    HUP it (``mod_watch``).

    name
        ``qmail-send`` or ``qmail-smtpd``.
    supervisor
        ``systemd``, ``daemontools`` or ``bootscript``.
    home
        The qmail home (its ``supervise/<name>/run``, ``bin/qmail-newmrh``).
    service_dir
        The directory svscan watches (daemontools).
    daemontools_bin
        Where svc, svok and svstat are (daemontools).
    enable
        systemd: enable the unit at boot.
    """
    ret = _ret(name)
    paths = _paths(supervisor, service_dir, daemontools_bin)
    try:
        _check_name(name, supervisor)
        if supervisor == "systemd":
            unit = _systemd_unit(name)
            pid = unit["MainPID"] or None
            if enable and unit.get("UnitFileState") != "enabled":
                ret["changes"]["enabled"] = {"old": False, "new": True}
                if not __opts__["test"]:
                    _systemctl("enable", name)
        else:
            pid = __salt__["qmail_service.service_pid"](name, **paths)
        if name == SEND:
            _newmrh(home, ret["changes"])
        if pid is None:
            ret["changes"]["running"] = {"old": False, "new": True}
            if not __opts__["test"]:
                pid = __salt__["qmail_service.start"](
                    home=home, service=name, **paths)
                ret["changes"]["pid"] = pid
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    if not ret["changes"]:
        ret["comment"] = f"{name} is running (pid {pid}) under {supervisor}"
    elif __opts__["test"]:
        ret.update(result=None, comment=f"{name} would be started under {supervisor}"
                   if "running" in ret["changes"] else f"{name} would be enabled at boot")
    else:
        ret["comment"] = f"{name} started under {supervisor}" if "running" in ret[
            "changes"] else f"{name} enabled at boot"
    return ret


def _newmrh(home, changes, watched=False):
    """
    qmail-smtpd reads morercpthosts only as morercpthosts.cdb: build it with
    qmail-newmrh when the file is newer than it (or a watched change says
    so, which in test mode has not been written yet).
    """
    source = os.path.join(home, "control", "morercpthosts")
    cdb = f"{source}.cdb"
    try:
        mtime = os.stat(source).st_mtime_ns
    except FileNotFoundError:
        if not (watched and __opts__["test"]):
            return  # nothing to build from (yet: test mode has not written it)
        mtime = None
    try:
        stale = mtime is None or os.stat(cdb).st_mtime_ns < mtime
    except FileNotFoundError:
        stale = True
    if stale or watched:
        changes["newmrh"] = cdb
        if not __opts__["test"]:
            __salt__["qmail_service.newmrh"](home)


def dead(name, supervisor, home, service_dir=None, daemontools_bin=None):
    """
    Make sure ``name`` does not run under ``supervisor`` and is not started
    at boot: systemd stops and disables its unit; daemontools takes it out
    of the service directory and makes its supervise exit; bootscript sends
    qmail-send TERM. TERM lets qmail-send finish the deliveries under way;
    the queue stays. Nothing to do when the unit or service is unknown.

    name
        ``qmail-send`` or ``qmail-smtpd``.
    supervisor
        ``systemd``, ``daemontools`` or ``bootscript``.
    home
        The qmail home (its ``supervise/<name>``).
    """
    ret = _ret(name)
    test = __opts__["test"]
    try:
        if supervisor == "systemd":
            if not __salt__["qmail_service.systemd_booted"]():
                ret["comment"] = "systemd does not run this host: nothing to stop"
                return ret
            unit = __salt__["qmail_service.unit_state"](name)
            if unit.get("LoadState") == "not-found":
                ret["comment"] = f"{name}.service is not known to systemd"
                return ret
            if unit.get("ActiveState") in ("active", "activating", "reloading"):
                ret["changes"]["running"] = {"old": True, "new": False}
                if not test:
                    __salt__["qmail_service.stop"](supervisor, service=name)
            if unit.get("UnitFileState") == "enabled":
                ret["changes"]["enabled"] = {"old": True, "new": False}
                if not test:
                    _systemctl("disable", name)
        elif supervisor == "daemontools":
            link = os.path.join(service_dir, name)
            supervise = os.path.join(home, "supervise", name)
            if os.path.lexists(link):
                ret["changes"]["link"] = {"old": link, "new": None}
                if not test:
                    os.unlink(link)  # svscan starts no new supervise for it
            svok = os.path.join(daemontools_bin, "svok")
            if os.path.isdir(supervise) and os.access(svok, os.X_OK) and not __salt__[
                    "cmd.retcode"]([svok, supervise], python_shell=False, ignore_retcode=True):
                ret["changes"]["running"] = {"old": True, "new": False}
                if not test:
                    log.info("qmail_service: svc -dx %s", supervise)
                    __salt__["cmd.run_all"]([os.path.join(daemontools_bin, "svc"), "-dx",
                                             supervise], python_shell=False)
        else:
            pid = __salt__["qmail_service.service_pid"](name, supervisor)
            if pid is not None:
                ret["changes"]["running"] = {"old": True, "new": False}
                if not test:
                    __salt__["qmail_service.stop"](supervisor, service=name)
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    if not ret["changes"]:
        ret["comment"] = f"{name} is not running under {supervisor}"
    elif test:
        ret.update(result=None, comment=f"{name} would be stopped under {supervisor}")
    else:
        ret["comment"] = f"{name} stopped under {supervisor}"
    return ret


def tcp_rules_compiled(name, ucspi_bin):
    """
    Make sure ``<name>.cdb``, the compiled form of the tcprules source
    ``name`` that tcpserver reads, exists; watched changes (of the source)
    compile it again.

    name
        The tcprules source, e.g. ``/etc/tcp.smtp``.
    ucspi_bin
        Where tcprules is.
    """
    ret = _ret(name)
    cdb = f"{name}.cdb"
    if os.path.exists(cdb):
        ret["comment"] = f"{cdb} exists"
        return ret
    return _compile_rules(ret, name, ucspi_bin, "it is missing")


def _compile_rules(ret, name, ucspi_bin, why):
    cdb = f"{name}.cdb"
    ret["changes"] = {"compiled": cdb}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{cdb} would be compiled: {why}")
        return ret
    try:
        __salt__["qmail_service.compile_tcp_rules"](name, ucspi_bin)
    except (OSError, CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    ret["comment"] = f"{cdb} compiled: {why}"
    return ret


def inetd_reloaded(name, missing_ok=False):
    """
    Tell inetd (SIGHUP) to re-read ``name`` (its inetd.conf) when a watched
    state changed it; by itself it changes nothing. Without ``missing_ok``,
    a change with no inetd running fails: nothing would serve the new line.

    name
        inetd.conf.
    missing_ok
        No inetd running is fine (a client that only loses a line).
    """
    ret = _ret(name)
    ret["comment"] = f"inetd re-reads {name} when it changes"
    return ret


def _watched_changes():
    """The watched states that changed: [(state, function, id, changes)]."""
    try:
        low, running_ = __low__, __running__
    except NameError:  # called outside a state run
        return []
    found = []
    for req in low.get("__reqs__", {}).get("watch", []):
        run = running_.get(_gen_tag(req))
        if run and run.get("changes"):
            found.append((req["state"], req["fun"], req["__id__"], run["changes"]))
    return found


def _actions(name, watched):
    """What the watched changes call for: {"restart"|"hup"|"newmrh": [ids]}."""
    actions = {}
    for state, fun, sid, changes in watched:
        if state == "qmail_control":
            wanted = changes.get("reload") or []
            wanted = [wanted] if isinstance(wanted, str) else wanted
            if fun == "absent":  # a removed morercpthosts leaves no .cdb to build
                wanted = [w for w in wanted if w != "newmrh"]
        elif sid.endswith("-log-run-file-managed"):
            wanted = ["log"]  # multilog's own supervise: the service keeps running
        else:
            wanted = ["restart"]
        for action in wanted:
            if name != SEND and action != "restart":
                continue  # qmail-smtpd reads control files per connection
            actions.setdefault(action, []).append(sid)
    return actions


def _restart_log(name, paths):
    """multilog reads its size and count at start: restart it (svc -t on the
    service's log/, when its supervise runs) and leave the service alone."""
    if paths["supervisor"] != "daemontools":
        return
    bindir = paths["daemontools_bin"]
    log_dir = os.path.join(paths["service_dir"], name, "log")
    if __salt__["cmd.retcode"]([os.path.join(bindir, "svok"), log_dir], python_shell=False,
                               ignore_retcode=True):
        return  # not supervised yet: svscan starts it with the new run script
    log.info("qmail_service: svc -t %s", log_dir)
    proc = __salt__["cmd.run_all"]([os.path.join(bindir, "svc"), "-t", log_dir],
                                   python_shell=False, ignore_retcode=True)
    if proc["retcode"]:
        raise CommandExecutionError(f"svc -t {log_dir} failed: {proc['stderr']}")


def mod_watch(name, sfun=None, **kwargs):
    """
    What a watched change does (not called directly): for ``running``, a
    restart, a HUP and/or qmail-newmrh, as the changes call for (see the
    module's docstring); for ``tcp_rules_compiled``, compile again; for
    ``inetd_reloaded``, HUP to inetd. ``test=True`` reports it in
    ``changes`` and does nothing.
    """
    ret = _ret(name)
    test = __opts__["test"]
    if sfun == "tcp_rules_compiled":
        return _compile_rules(ret, name, kwargs["ucspi_bin"], "its source changed")
    if sfun == "inetd_reloaded":
        ret["changes"] = {"hup": "inetd"}
        if test:
            ret.update(result=None, comment=f"inetd would re-read {name}")
            return ret
        try:
            pids = __salt__["qmail_service.reload_inetd"](missing_ok=kwargs.get("missing_ok"))
        except (CommandExecutionError, SaltInvocationError) as exc:
            return _fail(ret, exc)
        ret.update(changes={"hup": pids} if pids else {},
                   comment=f"inetd re-read {name}" if pids else "no inetd runs")
        return ret
    if sfun != "running":
        return _fail(ret, f"qmail_service.{sfun} has no watch action")
    supervisor = kwargs["supervisor"]
    home = kwargs["home"]
    paths = _paths(supervisor, kwargs.get("service_dir"), kwargs.get("daemontools_bin"))
    actions = _actions(name, _watched_changes())
    changes = ret["changes"]
    try:
        _newmrh(home, changes, "newmrh" in actions)
        pid = __salt__["qmail_service.service_pid"](name, **paths)
        if "log" in actions:
            changes["log"] = {"restart": actions["log"]}
            if not test:
                _restart_log(name, paths)
        action = "restart" if "restart" in actions else "hup" if "hup" in actions else None
        if action:
            changes.update(action=action, because=actions[action], pid={"old": pid})
            if test:
                pass
            elif action == "restart" or pid is None:
                changes["pid"]["new"] = __salt__["qmail_service.restart"](
                    home=home, service=name, **paths)
            else:
                __salt__["qmail_service.hup"](**paths)
                changes["pid"]["new"] = pid
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    if not changes:
        ret["comment"] = f"{name} needs nothing for these changes (read per message)"
    elif test:
        ret.update(result=None, comment=f"{name} would be told: " + ", ".join(
            sorted(a for a in ("restart", "hup", "newmrh", "log") if a in changes or
                   changes.get("action") == a)))
    else:
        ret["comment"] = f"{name} told: " + ", ".join(
            sorted(a for a in ("restart", "hup", "newmrh", "log") if a in changes or
                   changes.get("action") == a))
    return ret
