"""The qmail_service state module on Salt's loader, each case applied for
real and with test=True: morercpthosts.cdb compiled only when needed, what
each reaction state does when a watched state changed (a restart or a HUP
through stand-ins for daemontools, with the reason), and the states that
need no supervisor here. tcp_rules_compiled runs the real tcprules:
test/integration/test_host_programs_salt_call.py."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_inetd_reloaded_by_itself_changes_nothing(states, tmp_path, test_mode):
    ret = states.qmail_service.inetd_reloaded(name=str(tmp_path / "inetd.conf"),
                                              test=test_mode)
    assert ret.result is True and ret.changes == {}


def test_running_refuses_smtpd_under_the_boot_script(states, home, test_mode):
    ret = states.qmail_service.running(name="qmail-smtpd", supervisor="bootscript",
                                       home=str(home), test=test_mode)
    assert ret.result is False
    assert "inetd runs it" in ret.comment


def test_dead_with_nothing_running_changes_nothing(states, home, tmp_path, test_mode):
    for supervisor in ("daemontools", "bootscript"):
        ret = states.qmail_service.dead(
            name="qmail-send", supervisor=supervisor, home=str(home),
            service_dir=str(tmp_path / "service"), daemontools_bin="/usr/bin", test=test_mode)
        assert ret.result is True and ret.changes == {}, ret


def test_dead_daemontools_takes_the_link_out(states, home, tmp_path, test_mode):
    service_dir = tmp_path / "service"
    service_dir.mkdir()
    (service_dir / "qmail-smtpd").symlink_to(home / "supervise" / "qmail-smtpd")
    ret = states.qmail_service.dead(
        name="qmail-smtpd", supervisor="daemontools", home=str(home),
        service_dir=str(service_dir), daemontools_bin="/usr/bin", test=test_mode)
    assert ret.changes == {"link": {"old": str(service_dir / "qmail-smtpd"), "new": None}}
    assert ret.result is (None if test_mode else True)
    assert (service_dir / "qmail-smtpd").is_symlink() is test_mode


# -- reactions: each a state of its own, by requisites -----------------------
CONCURRENCY = "qmail-control-file-managed-concurrencyremote"
LOCALS = "qmail-control-file-managed-locals"
RUN = "qmail-service-send-run-file-managed"
RESTART_REASONS = {CONCURRENCY: "concurrencyremote", "qmail-control-file-managed-me": "me",
                   RUN: None}


@pytest.fixture
def newmrh_home(home):
    """A home with a stand-in qmail-newmrh (builds the .cdb in control/)."""
    (home / "bin").mkdir(parents=True)
    (home / "control").mkdir()
    newmrh = home / "bin" / "qmail-newmrh"
    newmrh.write_text("#!/bin/sh\ncp control/morercpthosts control/morercpthosts.cdb\n")
    newmrh.chmod(0o755)
    return home


def test_morercpthosts_compiled_builds_a_missing_or_older_cdb(states, newmrh_home, test_mode):
    source = newmrh_home / "control" / "morercpthosts"
    cdb = newmrh_home / "control" / "morercpthosts.cdb"
    call = states.qmail_service.morercpthosts_compiled
    assert call(name=str(source), home=str(newmrh_home), test=test_mode).changes == {}
    source.write_text("lists.example.org\n")
    ret = call(name=str(source), home=str(newmrh_home), test=test_mode)
    assert ret.changes == {"newmrh": f"{source}.cdb"}
    assert ret.result is (None if test_mode else True)
    assert cdb.exists() is not test_mode
    if not test_mode:  # built: nothing more to do, until the file is newer again
        assert call(name=str(source), home=str(newmrh_home)).changes == {}
        os.utime(cdb, ns=(1, 1))
        assert call(name=str(source), home=str(newmrh_home)).changes == {"newmrh": str(cdb)}


def test_a_watched_morercpthosts_change_builds_again(states, newmrh_home, test_mode):
    source = newmrh_home / "control" / "morercpthosts"
    source.write_text("lists.example.org\n")
    ret = states.qmail_service.mod_watch(name=str(source), sfun="morercpthosts_compiled",
                                         home=str(newmrh_home), test=test_mode)
    assert ret.changes == {"newmrh": f"{source}.cdb"}
    assert (newmrh_home / "control" / "morercpthosts.cdb").exists() is not test_mode


@pytest.fixture
def daemontools(tmp_path):
    """
    qmail-send under stand-ins for svstat and svc: svstat reports the PID
    in ``pid``, svc logs its arguments (and -t puts a new PID in place, as
    supervise would). The process itself is a child of this test that
    catches SIGHUP, as qmail-send does.
    """
    bindir = tmp_path / "daemontools"
    bindir.mkdir()
    (bindir / "svstat").write_text(
        f'#!/bin/sh\necho "$1: up (pid $(cat {tmp_path}/pid)) 9 seconds"\n')
    (bindir / "svc").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/svc.log\n"
                                f'[ "$1" = -t ] && echo 999999 > {tmp_path}/pid\nexit 0\n')
    for name in ("svstat", "svc"):
        (bindir / name).chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                             "signal.signal(signal.SIGHUP, lambda *_: print('hup', flush=True))\n"
                             "print('ready', flush=True)\ntime.sleep(600)\n"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    (tmp_path / "pid").write_text(f"{proc.pid}\n")
    yield {"supervisor": "daemontools", "service_dir": str(tmp_path / "service"),
           "daemontools_bin": str(bindir), "pid": proc.pid, "log": tmp_path / "svc.log"}
    proc.kill()
    proc.wait()


def _watch(states, sfun, paths, home, reasons, test):
    return states.qmail_service.mod_watch(
        name="qmail-send", sfun=sfun, home=str(home), reasons=reasons, test=test,
        **{k: paths[k] for k in ("supervisor", "service_dir", "daemontools_bin")})


def _apply(modules, home, paths, reaction, reasons, control, test):
    """
    One state run, as the SLS has it: control files, then a reaction state
    of qmail-send that watches them. Returns {state ID: result}.
    """
    args = {"name": "qmail-send", "home": str(home), "reasons": reasons,
            **{k: paths[k] for k in ("supervisor", "service_dir", "daemontools_bin")}}
    high = {sid: {"qmail_control": [{"name": name}, {"home": str(home)},
                                    {"contents": contents}, "managed"]}
            for sid, (name, contents) in control.items()}
    high["reaction"] = {"qmail_service": [
        *({k: v} for k, v in args.items()), reaction,
        {"watch": [{"qmail_control": sid} for sid in control]}]}
    for data in high.values():
        data.update(__sls__="unit", __env__="base")
    ret = modules.state.high(high, test=test)
    return {result.id: result for result in ret}


def test_a_watched_restart_names_the_control_files_that_changed(
        modules, home, daemontools, test_mode):
    (home / "control").mkdir(parents=True)
    ret = _apply(modules, home, daemontools, "running", RESTART_REASONS, {
        CONCURRENCY: ("concurrencyremote", 23), "locals": ("locals", ["example.org"])},
        test_mode)
    restart = ret["reaction"]
    assert restart.result is (None if test_mode else True), restart.comment
    assert restart.changes["action"] == "restart"
    assert restart.changes["because"] == [CONCURRENCY]  # locals is no reason to restart
    assert restart.changes["pid"]["old"] == daemontools["pid"]
    if test_mode:
        assert not daemontools["log"].exists()  # told nothing
        assert not (home / "control" / "concurrencyremote").exists()
    else:
        assert daemontools["log"].read_text() == f"-t {daemontools['service_dir']}/qmail-send\n"
        assert restart.changes["pid"]["new"] == 999999


def test_a_restart_no_control_file_explains_names_the_other_watched_states(
        states, home, daemontools):
    ret = _watch(states, "running", daemontools, home, RESTART_REASONS, True)
    assert ret.changes["because"] == [RUN]


def test_a_watched_hup_keeps_the_pid_and_names_its_files(modules, home, daemontools, test_mode):
    (home / "control").mkdir(parents=True)
    reasons = {LOCALS: "locals", "qmail-control-file-absent-virtualdomains": "virtualdomains"}
    ret = _apply(modules, home, daemontools, "send_reloaded", reasons,
                 {LOCALS: ("locals", ["example.org"])}, test_mode)
    hup = ret["reaction"]
    pid = daemontools["pid"]
    assert hup.changes == {"action": "hup", "because": [LOCALS],
                           "pid": {"old": pid} if test_mode else {"old": pid, "new": pid}}
    if test_mode:
        assert hup.result is None and not daemontools["log"].exists()
    else:
        assert daemontools["log"].read_text() == f"-h {daemontools['service_dir']}/qmail-send\n"
    if not test_mode:  # a second run: nothing changed, nothing to tell
        again = _apply(modules, home, daemontools, "send_reloaded", reasons,
                       {LOCALS: ("locals", ["example.org"])}, False)["reaction"]
        assert again.result is True and again.changes == {}


def test_no_hup_for_a_qmail_send_that_does_not_run_yet(states, home, tmp_path, test_mode):
    # Ordered before running: the qmail-send it starts reads the files itself.
    paths = {"supervisor": "bootscript", "service_dir": None, "daemontools_bin": None}
    ret = _watch(states, "send_reloaded", paths, home, {LOCALS: "locals"}, test_mode)
    assert ret.result is True and ret.changes == {}


def test_reactions_by_themselves_change_nothing(states, home, test_mode):
    hup = states.qmail_service.send_reloaded(
        name="qmail-send", supervisor="systemd", home=str(home), reasons={LOCALS: "locals"},
        test=test_mode)
    assert hup.result is True and hup.changes == {}
    log = states.qmail_service.log_restarted(name="qmail-smtpd", supervisor="daemontools",
                                             test=test_mode)
    assert log.result is True and log.changes == {}


def test_multilog_restarts_only_where_it_runs(states, home, test_mode):
    ret = states.qmail_service.mod_watch(name="qmail-send", sfun="log_restarted",
                                         supervisor="systemd", test=test_mode)
    assert ret.result is True and ret.changes == {}


def test_enabled_is_systemd_s_alone(states, test_mode):
    for supervisor in ("daemontools", "bootscript"):
        ret = states.qmail_service.enabled(name="qmail-send", supervisor=supervisor,
                                           test=test_mode)
        assert ret.result is True and ret.changes == {}, ret
    if not os.path.isdir("/run/systemd/system"):  # this machine: systemd is not PID 1
        ret = states.qmail_service.enabled(name="qmail-send", supervisor="systemd",
                                           test=test_mode)
        assert ret.result is False and "systemd does not run this host" in ret.comment
