"""
Keep qmail's services running, and tell them of changes the way qmail
needs (qmail-send(8)). Which change calls for which reaction is written in
the SLS, as requisites: each reaction is a state of its own that watches
the states whose changes call for it.

- ``running`` keeps a service up; its ``mod_watch`` restarts it. qmail-send's
  watches the control files it reads only at start, its run script, ``rc``,
  its unit and a reinstall. ``enabled`` (systemd) starts it at boot.
- ``send_reloaded`` HUPs qmail-send (same PID) for ``locals`` and
  ``virtualdomains``; it runs before the restart, so a HUP and a restart
  due in one run are both harmless.
- ``morercpthosts_compiled`` keeps ``morercpthosts.cdb`` (qmail-smtpd reads
  only that) built from ``morercpthosts`` with qmail-newmrh.
- ``log_restarted`` restarts a service's multilog (daemontools) when its
  run script changes; the service keeps running.
- Files read per message (by qmail-smtpd, qmail-remote, ...) are watched by
  nothing.

.. code-block:: yaml

    qmail-service-send-hup-qmail_service-send_reloaded:
      qmail_service.send_reloaded:
        - name: qmail-send
        - supervisor: systemd
        - home: /var/qmail
        - reasons:
            qmail-control-file-managed-locals: locals
        - watch:
          - qmail_control: qmail-control-file-managed-locals

    qmail-service-send-qmail_service-running:
      qmail_service.running:
        - name: qmail-send
        - supervisor: systemd
        - home: /var/qmail
        - reasons:
            qmail-control-file-managed-concurrencyremote: concurrencyremote
            qmail-service-send-run-file-managed: null
        - require:
          - qmail_service: qmail-service-send-hup-qmail_service-send_reloaded
        - watch:
          - qmail_control: qmail-control-file-managed-concurrencyremote
          - file: qmail-service-send-run-file-managed

``reasons`` maps the IDs of the watched states to the control file each
manages (null for other files): a reaction names in ``changes`` (``because``)
the control files that changed in this run (``qmail_control.changed``), or
the other watched states when no control file explains it. ``test=True``
reports each reaction in ``changes`` and sends nothing.
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_service"

SEND = "qmail-send"  # the one service that re-reads files on SIGHUP


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


def _backend(supervisor, **paths):
    """
    The supervisor's backend (``_utils/qmail_supervisors.py``), chosen once:
    the states ask it what runs and what starts at boot, and act through
    the execution module (which goes through the same backend).
    """
    given = {key: value for key, value in paths.items() if value is not None}

    def path(key):
        if key not in given:
            raise SaltInvocationError(f"{key}: needed under supervisor {supervisor}")
        return given[key]

    return __utils__["qmail_supervisors.backend"](
        supervisor, run_all=__salt__["cmd.run_all"],
        pids_named=__utils__["qmail_procs.pids_named"], alive=__utils__["qmail_procs.alive"],
        booted=__salt__["qmail_service.systemd_booted"](), path=path, units=_units())


def _units():
    """This state run's snapshot of qmail's systemd units (one ``systemctl
    show`` for the run's states; ``_utils/qmail_supervisors.Systemd``)."""
    run = __context__.value() if hasattr(__context__, "value") else __context__
    found, units = __utils__["qmail_runcache.lookup"](run, "qmail_service:units")
    return units if found else __utils__["qmail_runcache.store"](run, "qmail_service:units", {})


def _check_name(name, supervisor, **paths):
    """The backend of ``supervisor``, once it is known to run ``name``."""
    services = __utils__["qmail_supervisors.services"]()
    if name not in services:
        raise SaltInvocationError(f"name: {name!r} is not one of {', '.join(services)}")
    backend = _backend(supervisor, **paths)
    why = backend.refusal(name)
    if why:
        raise SaltInvocationError(why)
    return backend


def running(name, supervisor, home, service_dir=None, daemontools_bin=None, enable=True,
            reasons=None):
    """
    Make sure ``name`` (``qmail-send``, or ``qmail-smtpd`` under tcpserver)
    runs under ``supervisor``. A watched change restarts it (``mod_watch``).
    Boot is for other states (systemd: ``enabled``; daemontools: the service
    directory's link; bootscript: the boot script): Salt skips ``mod_watch``
    when this state changes anything itself, and only a start, which reads
    everything anew, may take the place of a restart.

    name
        ``qmail-send``, ``qmail-smtpd``, ``qmail-smtpsd`` or ``qmail-filterd``.
    supervisor
        ``systemd``, ``daemontools`` or ``bootscript``.
    home
        The qmail home (its ``supervise/<name>/run``).
    service_dir
        The directory svscan watches (daemontools).
    daemontools_bin
        Where svc, svok and svstat are (daemontools).
    enable
        systemd: also enable the unit at boot here (for use without the
        ``enabled`` state; then an enabling swallows a restart due in the
        same run). The formula's SLS passes False.
    reasons
        The watched states' IDs, each with the control file it manages or
        null: what ``because`` names (see the module's docstring).
    """
    ret = _ret(name)
    paths = _paths(supervisor, service_dir, daemontools_bin)
    try:
        backend = _check_name(name, supervisor, home=home, service_dir=service_dir,
                              daemontools_bin=daemontools_bin)
        backend.check(name)  # systemd: this host runs it
        pid = backend.pid(name)
        if enable:
            _enable(backend, name, ret["changes"])
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


def _enable(backend, name, changes):
    """Enable ``name`` at boot where its supervisor does that (not through
    files); returns whether it does."""
    was = backend.enabled(name)
    if was is False:
        changes["enabled"] = {"old": False, "new": True}
        if not __opts__["test"]:
            backend.enable(name)
    return was is not None


def enabled(name, supervisor):
    """
    Make sure systemd starts ``name`` at boot (its unit enabled); a state of
    its own so that enabling never keeps ``running`` from restarting. Other
    supervisors start their services at boot through file states (the
    service directory's link, the boot script): nothing to do here.

    name
        ``qmail-send``, ``qmail-smtpd``, ``qmail-smtpsd`` or ``qmail-filterd``.
    supervisor
        ``systemd``, ``daemontools`` or ``bootscript``.
    """
    ret = _ret(name)
    try:
        if not _enable(_check_name(name, supervisor), name, ret["changes"]):
            ret["comment"] = f"{supervisor} starts {name} at boot through its files"
            return ret
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    if not ret["changes"]:
        ret["comment"] = f"{name} is enabled at boot"
    elif __opts__["test"]:
        ret.update(result=None, comment=f"{name} would be enabled at boot")
    else:
        ret["comment"] = f"{name} enabled at boot"
    return ret


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
    try:
        backend = _backend(supervisor, home=home, service_dir=service_dir,
                           daemontools_bin=daemontools_bin)
        ret["changes"], note = backend.dead_changes(name)
        if note:
            ret["comment"] = note
            return ret
        if ret["changes"] and not __opts__["test"]:
            log.info("qmail_service: %s dead under %s: %s", name, supervisor,
                     sorted(ret["changes"]))
            backend.make_dead(name, ret["changes"])
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    test = __opts__["test"]
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


def send_reloaded(name, supervisor, home, service_dir=None, daemontools_bin=None,
                  reasons=None):
    """
    HUP qmail-send when a watched state changed (``locals``,
    ``virtualdomains``: qmail-send re-reads them on SIGHUP and keeps its
    PID); by itself it changes nothing. Order it before ``running``: a
    restart due in the same run then follows the HUP, which is harmless.

    name
        ``qmail-send``.
    supervisor, home, service_dir, daemontools_bin
        As for ``running``.
    reasons
        The watched states' IDs, each with the control file it manages.
    """
    ret = _ret(name)
    try:
        _check_name(name, supervisor)
        if name != SEND:
            raise SaltInvocationError(f"name: only {SEND} re-reads files on SIGHUP")
    except SaltInvocationError as exc:
        return _fail(ret, exc)
    ret["comment"] = f"{name} re-reads {', '.join(sorted(set((reasons or {}).values())))} " \
                     "on SIGHUP when they change"
    return ret


def morercpthosts_compiled(name, home):
    """
    Make sure ``<name>.cdb``, which qmail-smtpd reads instead of
    ``morercpthosts`` itself, is built from ``name`` and not older than it;
    watched changes (of ``name``) build it again with qmail-newmrh.

    name
        The morercpthosts file, ``<home>/control/morercpthosts``.
    home
        The qmail home (its ``bin/qmail-newmrh``).
    """
    ret = _ret(name)
    cdb = f"{name}.cdb"
    try:
        source = os.stat(name).st_mtime_ns
    except FileNotFoundError:
        ret["comment"] = f"{name} does not exist (yet): nothing to build"
        return ret
    try:
        stale = os.stat(cdb).st_mtime_ns < source
    except FileNotFoundError:
        return _newmrh(ret, name, home, "it is missing")
    if stale:
        return _newmrh(ret, name, home, f"it is older than {name}")
    ret["comment"] = f"{cdb} is up to date"
    return ret


def _newmrh(ret, name, home, why):
    cdb = f"{name}.cdb"
    ret["changes"] = {"newmrh": cdb}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{cdb} would be built by qmail-newmrh: {why}")
        return ret
    try:
        __salt__["qmail_service.newmrh"](home)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    ret["comment"] = f"{cdb} built by qmail-newmrh: {why}"
    return ret


def log_restarted(name, supervisor, service_dir=None, daemontools_bin=None):
    """
    Restart the multilog of service ``name`` (daemontools: ``svc -t`` on its
    ``log/``) when a watched state changed its run script: multilog reads
    its size and count at start. The service itself keeps running. By
    itself it changes nothing; other supervisors have no multilog.

    name
        ``qmail-send``, ``qmail-smtpd``, ``qmail-smtpsd`` or ``qmail-filterd``.
    supervisor
        ``daemontools`` (anything else: nothing to do).
    """
    ret = _ret(name)
    ret["comment"] = f"{name}'s multilog restarts when its run script changes"
    return ret


def _because(home, reasons):
    """
    The watched states that call for a reaction, for ``changes``: those
    whose control file changed in this run (or would, under test=True); when
    none did, the other watched states (run script, rc, unit, build), one
    of which changed; with neither, every watched state.
    """
    reasons = reasons or {}
    told = __salt__["qmail_control.changed"](home) if any(reasons.values()) else {}
    because = [sid for sid, file in reasons.items() if file and file in told]
    return sorted(because or [sid for sid, file in reasons.items() if not file]
                  or reasons)


def _watch_log(ret, name, paths):
    """multilog reads its size and count at start: restart it (the service's
    log/, where its supervisor has one) and leave the service alone."""
    backend = _backend(**paths)
    if not backend.multilog:
        ret["comment"] = f"{name} has no multilog under {backend.name}"
        return ret
    ret["changes"] = {"log": "restart"}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name}'s multilog would be restarted")
    elif backend.restart_log(name):
        ret["comment"] = f"{name}'s multilog restarted"
    else:
        ret.update(changes={}, comment=f"{name}'s multilog is not supervised yet: "
                                       "svscan starts it with the new run script")
    return ret


def _watch_signal(ret, name, action, kwargs):
    """
    A restart (``running``) or a HUP (``send_reloaded``) of ``name``, with
    the reason in ``changes``; under test=True only reported.
    """
    paths = _paths(kwargs["supervisor"], kwargs.get("service_dir"),
                   kwargs.get("daemontools_bin"))
    home = kwargs["home"]
    pid = __salt__["qmail_service.service_pid"](name, **paths)
    if action == "hup" and pid is None:
        # Ordered before running: it starts qmail-send, which reads them then.
        ret["comment"] = f"{name} is not running: it reads them when it starts"
        return ret
    ret["changes"] = {"action": action, "because": _because(home, kwargs.get("reasons")),
                      "pid": {"old": pid}}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name} would be told: {action}")
        return ret
    if action == "hup":
        __salt__["qmail_service.hup"](**paths)
        ret["changes"]["pid"]["new"] = pid
    else:
        ret["changes"]["pid"]["new"] = __salt__["qmail_service.restart"](
            home=home, service=name, **paths)
    ret["comment"] = f"{name} told: {action}"
    return ret


def mod_watch(name, sfun=None, **kwargs):
    """
    What a watched change does (not called directly), by the watching
    state's function: ``running`` restarts, ``send_reloaded`` HUPs
    qmail-send, ``morercpthosts_compiled`` runs qmail-newmrh,
    ``tcp_rules_compiled`` compiles again, ``inetd_reloaded`` HUPs inetd,
    ``log_restarted`` restarts multilog. ``test=True`` reports it in
    ``changes`` and does nothing.
    """
    ret = _ret(name)
    try:
        if sfun == "running":
            _check_name(name, kwargs["supervisor"])
            return _watch_signal(ret, name, "restart", kwargs)
        if sfun == "send_reloaded":
            return _watch_signal(ret, name, "hup", kwargs)
        if sfun == "morercpthosts_compiled":
            if not os.path.exists(name) and not __opts__["test"]:
                ret["comment"] = f"{name} does not exist: nothing to build"
                return ret
            return _newmrh(ret, name, kwargs["home"], f"{os.path.basename(name)} changed")
        if sfun == "tcp_rules_compiled":
            return _compile_rules(ret, name, kwargs["ucspi_bin"], "its source changed")
        if sfun == "inetd_reloaded":
            return _watch_inetd(ret, name, kwargs.get("missing_ok"))
        if sfun == "log_restarted":
            return _watch_log(ret, name, _paths(kwargs["supervisor"], kwargs.get(
                "service_dir"), kwargs.get("daemontools_bin")))
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    return _fail(ret, f"qmail_service.{sfun} has no watch action")


def _watch_inetd(ret, name, missing_ok):
    ret["changes"] = {"hup": "inetd"}
    if __opts__["test"]:
        ret.update(result=None, comment=f"inetd would re-read {name}")
        return ret
    pids = __salt__["qmail_service.reload_inetd"](missing_ok=missing_ok)
    ret.update(changes={"hup": pids} if pids else {},
               comment=f"inetd re-read {name}" if pids else "no inetd runs")
    return ret
