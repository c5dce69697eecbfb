"""A real salt-master for the lab hosts, started with pytest-salt-factories.

The master runs on this machine and listens on the lab bridge's gateway
address, so only the lab's hosts can reach it. Keys are accepted
automatically (``auto_accept`` + ``open_mode``: a host re-created under the
same FQDN brings a new key). ``file_roots`` is a temporary directory (top.sls
and test files) followed by the repository checkout (the formula at
<repo>/qmail, custom modules at <repo>/_modules, _states, _utils)
(through a directory of symlinks, see ``_formula_view``);
``pillar_roots`` is a temporary directory whose top.sls gives every minion a
pillar file of its own (see ``set_pillar``).

Salt commands are the master's ``salt`` CLI with ``--out=json``, exactly as
a user would type them (one JSON document per minion, merged here; not
``--static``, whose batch code pings every minion before each command).
``salt`` and ``salt-key`` run in one long-lived helper process per master
(``lab/saltclient.py``: the CLI's own classes, without a new Python process per command,
which cost 0.6 s of CPU each); it answers as the CLI process would (stdout,
stderr, return code). ``QMAIL_LAB_SALT_CLI=1`` runs the ``salt`` and
``salt-key`` scripts instead, one process per command: the reference the
helper is checked against, and the way back if Salt's CLI code changes
under it. A helper per master, not a ``LocalClient`` in the test's process:
Salt keeps process-wide caches (opts, event/IPC clients, crypto keys), and
a pytest worker creates and destroys many masters; with one client
process shared between them, late lab setups saw no ``test.ping``
answers (README "Tests"). Commands whose CLI behaviour is itself used
(``salt --async`` in the kill trials, ``salt-run``) always run the script.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence

import yaml

from . import config, formula
from .host import Host
from .lab import Lab
from .saltclient import SaltClient, SaltClientError

#: A minion given no pillar data yet (``set_pillar``: {} is data).
_NO_PILLAR = object()

#: Functions that read no pillar the minion holds in memory: the state
#: functions compile it afresh for their run, the others do not read it.
_PILLAR_UNREAD = ("state.", "saltutil.sync_", "saltutil.refresh_", "saltutil.running",
                  "test.ping", "grains.")


def _reads_pillar(fun: str) -> bool:
    """Whether ``fun`` (or one of a comma-joined list) may read the minion's
    pillar in memory, so that a change ``set_pillar`` made must be there."""
    return any(not name.startswith(_PILLAR_UNREAD) for name in fun.split(","))


#: ``QMAIL_LAB_SALT_CLI=1``: every command through the CLI scripts (module docstring).
USE_CLI = os.environ.get("QMAIL_LAB_SALT_CLI", "") not in ("", "0")


def loopback_event_listener():
    """A saltfactories EventListener bound to 127.0.0.1 (its default is 0.0.0.0).

    The master runs on this machine, so loopback is all it needs.
    """
    from saltfactories.plugins.event_listener import EventListener

    listener = EventListener()
    listener.host = "127.0.0.1"
    listener.address = f"tcp://127.0.0.1:{listener.port}"
    return listener


REACTOR_TAG = "salt/beacon/*/qmail_queue/up"
REACTOR_SLS = "salt://qmail/files/reactor/flush-clients.sls"


class EventWatch:
    """``salt-run state.event`` running in the background, as a user watches
    the bus; ``events`` collects (tag, data) as they arrive."""

    def __init__(self, argv: list[str], env: dict):
        self.events: list[tuple[str, dict]] = []
        self._proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            tag, _, data = line.rstrip("\n").partition("\t")
            if data:
                self.events.append((tag, json.loads(data)))

    def tagged(self, tag: str) -> bool:
        return any(t == tag for t, _ in list(self.events))

    def matching(self, suffix: str, minion: str | None = None) -> list[dict]:
        """Data of the events whose tag ends with ``/suffix`` (from ``minion``)."""
        return [data for tag, data in list(self.events) if tag.endswith("/" + suffix)
                and (minion is None or data.get("id") == minion)]

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(5)


class SaltError(RuntimeError):
    """A salt command failed or minions did not answer."""


class SaltClientGone(SaltError):
    """The master's helper process (lab/saltclient.py) died or did not answer."""


#: What ``salt`` prints, before an empty ``{}``, when no minion matches.
_NO_MATCH = "No minions matched the target. No command was sent, no jid was assigned.\n"


def _json_documents(text: str) -> dict:
    """The returns ``salt --out=json`` printed, one JSON object per minion,
    merged into one dict (``{}`` for no output or no minion matched)."""
    text = text.removeprefix(_NO_MATCH)
    decoder, merged, pos = json.JSONDecoder(), {}, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return merged
        doc, pos = decoder.raw_decode(text, pos)
        if not isinstance(doc, dict):
            raise json.JSONDecodeError("not one object per minion", text, pos)
        merged.update(doc)


def _with_speedups(environ: dict) -> dict:
    """``environ`` for a lab master: lab/master_site first on its
    ``PYTHONPATH`` (lab/salt_speedups.py's ``install()`` at its start)."""
    site = str(pathlib.Path(__file__).resolve().parent / "master_site")
    path = [site, *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**environ, "PYTHONPATH": os.pathsep.join(path)}


def _minion_sls_name(minion_id: str) -> str:
    return "minions." + minion_id.replace(".", "_").replace("-", "_")


class LabMaster:
    """A salt-master daemon for a ``Lab`` (see the module docstring).

    Args:
        lab: the lab whose gateway address the master listens on (must be up).
        factories: a ``saltfactories.manager.FactoriesManager``; the pytest
            ``salt_factories`` fixture gives one. Without it a private manager
            (with its own log server and event listener) is made.
        top: the initial top.sls data of the file roots.
    """

    def __init__(self, lab: Lab, factories=None, top: dict | None = None):
        self.lab = lab
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="qmail-lab-master-"))
        self.file_root = self.tmp / "file_root"
        self.pillar_root = self.tmp / "pillar_root"
        (self.pillar_root / "minions").mkdir(parents=True)
        self.file_root.mkdir()
        self.formula_root = self._formula_view()
        self.pillars: dict[str, dict] = {}
        #: Minions whose pillar changed since their last refresh (``set_pillar``).
        self._stale: set[str] = set()
        self._write_pillar_top()
        self.set_top(top if top is not None else {"base": {"*": ["qmail"]}})
        self._own = []  # things to stop when we made the factories manager
        self._client: SaltClient | None = None  # started by the first command
        self._client_lock = threading.Lock()
        self.factories = factories or self._make_factories()
        self.daemon = self.factories.salt_master_daemon(
            f"qmail-lab-{lab.session}",
            overrides={
                "interface": lab.gateway,
                "auto_accept": True,
                "open_mode": True,
                "file_roots": {"base": [str(self.file_root), str(self.formula_root)]},
                "pillar_roots": {"base": [str(self.pillar_root)]},
                # No file list cache: checkout edits show at once, and there is
                # no race between minions rebuilding and reading the cache
                # (saltstack/salt#61407; seen here as a sporadic "No matching
                # sls found" when two minions sync at once). The formula view
                # is small, so walking it per request is cheap.
                "fileserver_list_cache_time": 0,
                # Python's caches beside the checkout's modules (the tests
                # load them) are not the formula's files: never served.
                "file_ignore_glob": ["*.pyc"],
                "timeout": 30,
                "gather_job_timeout": 15,
                # Sized for a lab of a few hosts on a few cores: each request
                # worker costs ~0.6 s of CPU to start (Salt's default is 5;
                # salt-factories' `peer` setting makes 3 the least).
                "worker_threads": 3,
                "log_level_logfile": "info",
                # Fleet builds the formula's way (README: Build once per
                # fleet): builders cp.push their trees, minionfs serves them;
                # lab.buildcache serves one compile to the tests' hosts.
                "file_recv": True,
                "fileserver_backend": ["roots", "minionfs"],
                # The README's reactor example, as a user sets it up: a
                # spool's qmail_queue beacon saying "up" flushes the clients.
                # Only hosts given that beacon in pillar ever send the event.
                "reactor": [{REACTOR_TAG: [REACTOR_SLS]}],
            },
        )
        self.daemon.environ = _with_speedups(self.daemon.environ)

    def _formula_view(self) -> pathlib.Path:
        """The formula's folders as symlinks (``lab/formula.py``); folders
        added later (a new ``_utils``) are linked by ``salt``."""
        return formula.link_view(self.tmp / "formula")

    @contextlib.contextmanager
    def formula_from(self, tree):
        """Serve the formula parts of ``tree`` (e.g. an older release's
        ``git archive``) instead of the checkout's inside the ``with`` block:
        the view's symlinks point at its ``qmail`` and ``_*`` folders (parts
        it lacks are not served), then back at the checkout."""
        view, tree = self.formula_root, pathlib.Path(tree)
        saved = {link.name: os.readlink(link) for link in view.iterdir() if link.is_symlink()}

        def point(targets: dict) -> None:
            for link in view.iterdir():
                if link.is_symlink():
                    link.unlink()
            for name, target in targets.items():
                (view / name).symlink_to(target)

        point(formula.parts(tree))
        try:
            yield
        finally:
            point(saved)

    def _make_factories(self):
        """A FactoriesManager for use outside pytest (demo, benchmarks)."""
        from saltfactories.manager import FactoriesManager
        from saltfactories.plugins.log_server import LogServer

        # FactoriesManager logs its own repr as a warning; nobody needs it on a terminal.
        logging.getLogger("saltfactories.manager").setLevel(logging.ERROR)
        log_server = LogServer(log_host="127.0.0.1", log_level="error")
        log_server.start()
        listener = loopback_event_listener()
        listener.start()
        self._own = [listener, log_server]
        return FactoriesManager(
            root_dir=self.tmp / "factories", log_server_host="127.0.0.1",
            log_server_port=log_server.log_port, log_server_level="error",
            event_listener=listener,
        )

    # -- life cycle ---------------------------------------------------------
    def start(self) -> LabMaster:
        """Start the master daemon (3-5 s)."""
        self.daemon.start()
        return self

    def stop(self) -> None:
        """Stop the master (and our private helpers) and remove its temp dir."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.stop()
        self.daemon.terminate()
        try:  # hand salt's deferred log records over now, not at exit to a closed stderr
            from salt._logging.impl import shutdown_temp_handler
            shutdown_temp_handler()
        except ImportError:
            pass
        for thing in self._own:
            thing.stop()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)

    def __enter__(self) -> LabMaster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def config_dir(self) -> str:
        """The master's configuration directory (for ``salt -c``)."""
        return str(self.daemon.config_dir)

    def minion_files(self, minion_id: str) -> str:
        """Where the master keeps what ``minion_id`` pushed (``cp.push``),
        which minionfs serves as ``salt://<minion_id>/...``."""
        return os.path.join(self.daemon.config["cachedir"], "minions", minion_id, "files")

    def sync_formula(self, target: str | Sequence[str]) -> dict:
        """Sync the formula's own kinds of custom modules to ``target``: one
        ``saltutil.sync_<kind>`` per ``_<kind>`` folder of the formula
        (utils first), as one job of several functions, the modules reloaded
        once at its end. What ``saltutil.sync_all`` leaves on the host for
        this formula, without the other kinds it syncs, each with a file
        client of its own (on a lab host ``sync_all`` costs about 2 s of CPU,
        this 0.6 s). Tests of the README's own commands keep ``sync_all``.
        Returns {minion: {function: the modules synced}}."""
        kinds = sorted((name[1:] for name in formula.parts(config.REPO_ROOT)
                        if name.startswith("_")), key=lambda kind: kind != "utils")
        funs = [f"saltutil.sync_{kind}" for kind in kinds]
        # Salt's separate arguments per function: refresh=False for all but the last.
        args = [a for _ in funs[:-1] for a in ("refresh=False", ",")]
        ret = self.salt(target, ",".join(funs), *args)
        for minion, synced in ret.items():
            assert isinstance(synced, dict) and set(synced) == set(funs), f"{minion}: {synced}"
        return ret

    def prebuilt(self, source, release: str | None = None, patches=()) -> dict:
        """``qmail:build`` that installs ``source``'s tree compiled once per
        run and release (lab.buildcache), for hosts not testing the build.
        ``patches``: ``lab.source.QmailSource`` patches applied in order
        (hosts give the same ``qmail:source:patches``, from ``put_patch``)."""
        from . import buildcache
        return buildcache.pillar(self, source, config.check_release(release), patches)

    def minion_config(self, minion_id: str) -> str:
        """Return /etc/salt/minion for a host with ``minion_id``."""
        conf = {
            "master": self.lab.gateway,
            "master_port": self.daemon.config["ret_port"],
            "publish_port": self.daemon.config["publish_port"],
            "id": minion_id,
            "acceptance_wait_time": 1,
            "acceptance_wait_time_max": 2,
            "random_reauth_delay": 0,
            "auth_timeout": 10,
            "master_tries": -1,
            "log_level_logfile": "info",
        }
        return yaml.safe_dump(conf, default_flow_style=False)

    # -- hosts ---------------------------------------------------------------
    def start_hosts(self, fqdns: Sequence[str], image: str = "base",
                    pillars: dict[str, dict] | None = None, timeout: float = 90,
                    release: str | dict[str, str] | None = None, ipv6: bool = False,
                    ) -> list[Host]:
        """Boot hosts named ``fqdns`` whose minions talk to this master.

        ``pillars`` ({fqdn: data}) is in place before the minions start;
        ``release`` is the Debian release of the hosts, one for all or
        {fqdn: release} (default: lab.config.DEFAULT_RELEASE); with ``ipv6``
        the hosts are on the lab's IPv6 network too (``host.ip6``).
        Returns the hosts once every minion answers ``test.ping``.
        """
        for fqdn in fqdns:
            self._forget_keys([fqdn])
        if pillars:
            self.set_pillar(pillars, refresh=False)
        files = {f: {"/etc/salt/minion": self.minion_config(f)} for f in fqdns}
        since = time.time()
        hosts = self.lab.create_hosts(fqdns, image, files=files, release=release, ipv6=ipv6)
        try:
            self.wait_minions([h.fqdn for h in hosts], timeout=timeout, since=since)
        except BaseException:
            # Nobody gets these hosts to remove: a failed start must not
            # leave their names taken for the next module of this lab.
            self.remove_hosts(hosts)
            raise
        return hosts

    def restart_host(self, host: Host, timeout: float = 90) -> None:
        """Reboot ``host`` (container restart) and wait for systemd and its minion."""
        since = time.time()
        host.reboot()
        self.wait_minions([host.fqdn], timeout=timeout, since=since)

    def remove_hosts(self, hosts: Iterable[Host]) -> None:
        """Remove hosts and their keys (so that ``salt '*'`` does not wait for
        them), and what they pushed: Salt keeps a minion's pushed files when
        its key goes, and a later module's host of the same name, a builder,
        would find the trees of this one already published."""
        hosts = list(hosts)
        self.lab.remove_hosts(hosts)
        self._forget_keys([h.fqdn for h in hosts])
        self._stale -= {h.fqdn for h in hosts}
        for host in hosts:
            shutil.rmtree(self.minion_files(host.fqdn), ignore_errors=True)

    def _forget_keys(self, ids: Iterable[str]) -> None:
        for minion_id in ids:
            self._command("salt-key", "-y", "-d", minion_id)

    def wait_minions(self, ids: Sequence[str], timeout: float = 90,
                     since: float | None = None) -> None:
        """Wait until every minion in ``ids`` answers ``test.ping``.

        With ``since`` (a time.time() value), first wait for the minions'
        ``salt/minion/<id>/start`` events fired after it: cheaper than
        polling with the salt CLI while the minions are still starting.
        """
        deadline = time.monotonic() + timeout
        if since is not None:
            listener = self.factories.event_listener
            listener.wait_for_events([(self.daemon.id, f"salt/minion/{m}/start") for m in ids],
                                     timeout=timeout, after_time=since)
        missing = set(ids)
        while missing:
            try:
                ret = self.salt(sorted(missing), "test.ping", timeout=3, check=False)
            except SaltClientGone:
                raise  # not a minion that is still starting
            except SaltError:
                ret = {}
            missing -= {m for m, v in ret.items() if v is True}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise SaltError(f"minions not up after {timeout} s: {sorted(missing)}")
            time.sleep(0.5)

    # -- salt commands -----------------------------------------------------
    def _cli(self, name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        script = pathlib.Path(sys.executable).parent / name
        env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
        return subprocess.run([str(script), "-c", self.config_dir, *args], env=env,
                              capture_output=True, text=True, timeout=timeout)

    def _command(self, name: str, *args: str, timeout: float = 600
                 ) -> subprocess.CompletedProcess:
        """``salt`` or ``salt-key`` with ``args``: through the master's helper
        process (lab/saltclient.py), or the script with ``QMAIL_LAB_SALT_CLI``.
        Raises SaltError with the helper's stderr if the helper is gone."""
        if USE_CLI:
            return self._cli(name, *args, timeout=timeout)
        with self._client_lock:
            if self._client is None:
                env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
                self._client = SaltClient(self.config_dir, str(self.tmp / "saltclient.log"), env)
            client = self._client
        try:
            return client.run(name, list(args), timeout=timeout)
        except SaltClientError as exc:
            raise SaltClientGone(str(exc)) from exc

    @contextlib.contextmanager
    def watch_events(self, tagmatch: str, timeout: float = 60):
        """Inside the block, an ``EventWatch`` of the master's bus for
        ``tagmatch`` (a regular expression), listening before the block starts:
        a marker event sent with ``salt-run event.send`` must have come through."""
        script = pathlib.Path(sys.executable).parent / "salt-run"
        env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
        ready = f"qmail-lab/watch-ready/{os.getpid()}-{time.monotonic_ns()}"
        watch = EventWatch([str(script), "-c", self.config_dir, "state.event",
                            f"^(?:{tagmatch}|{ready})$", "pretty=False"], env)
        try:
            deadline = time.monotonic() + timeout
            while not watch.tagged(ready):
                if time.monotonic() > deadline:
                    raise SaltError(f"salt-run state.event saw nothing in {timeout} s")
                self._cli("salt-run", "event.send", ready, timeout=60)
                time.sleep(1)
            yield watch
        finally:
            watch.stop()

    def salt(self, target: str | Sequence[str], fun: str, *args, tgt_type: str = "glob",
             timeout: float = 300, check: bool = True, **kwargs) -> dict:
        """Run ``salt TARGET FUN ARGS KWARGS`` and return {minion_id: return}.

        ``target`` may be a glob (default), a list of minion ids (``-L``), or
        an expression of ``tgt_type`` list, pcre, grain, compound or pillar.
        Keyword arguments become ``key=value`` (non-strings as JSON, e.g.
        ``pillar={...}``, ``test=True``). With ``check``, raise SaltError when a
        targeted minion gives no answer or the command cannot be run.
        """
        if self._stale and _reads_pillar(fun):
            self.refresh_pillars()
        if not isinstance(target, str):
            target, tgt_type = ",".join(target), "list"
        self._formula_view()
        flags = {"glob": [], "list": ["-L"], "pcre": ["-E"], "grain": ["-G"],
                 "compound": ["-C"], "pillar": ["-I"]}[tgt_type]
        argv = ["--out=json", f"--timeout={int(timeout)}", *flags, target, fun]
        argv += [a if isinstance(a, str) else json.dumps(a) for a in args]
        argv += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in kwargs.items()]
        proc = self._command("salt", *argv, timeout=timeout + 60)
        try:
            data = _json_documents(proc.stdout)
        except json.JSONDecodeError as exc:
            raise SaltError(f"salt {' '.join(argv)}: no JSON\n"
                            f"{proc.stdout}\n{proc.stderr}") from exc
        if check:
            expected = set(target.split(",")) if tgt_type == "list" else set()
            silent = [m for m in expected if m not in data]
            silent += [m for m, v in data.items()
                       if isinstance(v, str) and v.startswith("Minion did not return")]
            if silent or (not data and proc.returncode not in (0, 1)):
                raise SaltError(f"salt {' '.join(argv)}: no answer from {silent or 'anyone'}"
                                f" (rc {proc.returncode})\n{proc.stderr}")
        return data

    # -- files and pillar --------------------------------------------------
    def set_top(self, top: dict) -> None:
        """Write the state top.sls (e.g. {"base": {"*": ["qmail"]}})."""
        (self.file_root / "top.sls").write_text(yaml.safe_dump(top))

    @contextlib.contextmanager
    def temporary_top(self, top: dict):
        """Use ``top`` as the state top.sls inside the ``with`` block."""
        path = self.file_root / "top.sls"
        saved = path.read_text()
        self.set_top(top)
        try:
            yield
        finally:
            path.write_text(saved)

    def put_file(self, relpath: str, content: str | bytes) -> str:
        """Put a file into the temporary file root; return its salt:// URL."""
        path = self.file_root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
        return f"salt://{relpath}"

    def put_source(self, source) -> dict[str, str]:
        """Serve a ``lab.source.QmailSource`` from the master's file root;
        return the ``qmail:source`` pillar (url, hash) that names it."""
        url = self.put_file(f"sources/{source.path.name}", source.read_bytes())
        return {"url": url, "hash": source.salt_hash}

    def put_patch(self, patch) -> dict[str, str]:
        """Serve a patch (a ``lab.source.QmailSource``, e.g.
        ``lab.source.smtp_auth_patch()``) from the master's file root; return
        its ``qmail:source:patches`` entry (url, hash)."""
        url = self.put_file(f"patches/{patch.path.name}", patch.read_bytes())
        return {"url": url, "hash": patch.salt_hash}

    def _write_pillar_top(self) -> None:
        top = {"base": {m: [_minion_sls_name(m)] for m in sorted(self.pillars)}}
        if not self.pillars:
            top = {"base": {}}
        (self.pillar_root / "top.sls").write_text(yaml.safe_dump(top))

    def apply_ok(self, target: str | Sequence[str], sls: str = "qmail", test: bool = False,
                 timeout: float = 900) -> dict:
        """``salt TARGET state.apply SLS``; every state on every minion must
        succeed (a render error or a failed state raises AssertionError)."""
        ret = self.salt(target, "state.apply", sls, test=test, timeout=timeout)
        for minion, states in ret.items():
            assert isinstance(states, dict), f"{minion}: {states}"
            failed = {k: v["comment"] for k, v in states.items() if v["result"] is False}
            assert not failed, f"{minion}: {failed}"
        return ret

    def set_pillar(self, pillars: dict[str, dict], refresh: bool = True) -> None:
        """Give each minion in ``pillars`` exactly that pillar data.

        With ``refresh``, those of them whose data changed get
        ``saltutil.refresh_pillar`` before the next command that reads a
        minion's pillar in memory (see ``_reads_pillar``), or at
        ``refresh_pillars``: a module's fixture hands every host's pillar
        again when it changes one, most changes are followed by a
        ``state.apply``, which compiles the pillar afresh for its run, and a
        refresh costs a minion a job and a reload of its modules (about
        0.5 s of CPU).
        The data is kept as a copy, so that a caller changing its dict in
        place and handing it again is seen as a change.
        """
        changed = []
        for minion_id, data in pillars.items():
            data = copy.deepcopy(data)
            if self.pillars.get(minion_id, _NO_PILLAR) == data:
                continue  # its file already says this
            changed.append(minion_id)
            self.pillars[minion_id] = data
            name = _minion_sls_name(minion_id).replace(".", "/") + ".sls"
            (self.pillar_root / name).write_text(yaml.safe_dump(data or {}))
        if changed:
            self._write_pillar_top()
        if refresh:
            self._stale.update(changed)

    def refresh_pillars(self) -> None:
        """``saltutil.refresh_pillar`` now on the minions whose pillar
        ``set_pillar`` changed since (for what a minion takes from the
        pillar it holds without a command: beacons, its schedule)."""
        stale, self._stale = sorted(self._stale), set()
        if stale:
            self.salt(stale, "saltutil.refresh_pillar", wait=True)
