"""
Build qmail from a verified source tarball: the steps of the seed's manual
install, each a function of its own, and ``build``, which runs them.

``fetch`` (download or cache, then verify the hash: nothing is extracted
before it matches), ``extract``, the source fixes of the older releases
(``fix_errno``, ``fix_alloc``, ``fix_implicit``), ``write_conf`` (the
``conf-*`` files), ``make`` (``make setup`` into a staging tree, logged),
then the install: ``install_tree`` (the staged tree into the qmail home,
never touching the queue's contents, ``control/`` or ``alias/``;
``_utils/qmail_install.py``), ``make check`` (qmail's own ``instcheck`` on
the live home) and the ``record`` of what is installed, which makes a
second apply a no-op (``check_changes``).

A build a fleet can share (notqmail >= 1.07 looks its accounts up at run
time) is named by ``build_id``; ``qmail_fleet`` publishes the builder's
tree through the master and installs it on the other hosts.

The pillar keys ``source`` and ``build`` are checked by
``qmail_settings.merge`` (the schema's one owner), with the catalogue of
releases and the ``conf-*`` files of ``_utils/qmail_build_inputs.py``;
``presets``, ``parse_hash`` and ``conf_files`` here are its command-line face.
"""

import functools
import hashlib
import json
import logging
import os
import shutil
import time

import salt.utils.hashutils
from salt.exceptions import CommandExecutionError, MinionError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_build"



def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


# --------------------------------------------------------------------------
# What a build is made of (_utils/qmail_build_inputs.py)
# --------------------------------------------------------------------------
def _checked_source(source, key="source"):
    return _v("fields")(source, key, ("preset", "hash"))


def _checked_conf(conf, key="conf"):
    """conf-* name -> contents: names as qmail's Makefile knows them."""
    for name, value in _v("mapping")(conf, key).items():
        _v("matches")(name, f"{key}:{name}", r"conf-[a-z]+", "a conf-* file name")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            _v("fail")(f"{key}:{name}", f"expected text or a number, got {value!r}")
    return conf


def parse_hash(value, key="qmail:source:hash"):
    """
    Split a hash given as ``sha256=HEX``, ``sha256:HEX`` or a bare hex digest
    (its length says sha256 or sha512) into ``(algorithm, hexdigest)``.

    CLI Example::

        salt '*' qmail_build.parse_hash \
            value=sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52
    """
    return __utils__["qmail_build_inputs.parse_hash"](value, key)


def conf_files(home, users, groups, conf):
    """
    The contents of the ``conf-*`` files for a qmail home, the account names
    (INSTALL.ids keys -> names) and ``qmail:build:conf``.

    CLI Example::

        salt '*' qmail_build.conf_files /var/qmail \
            "{alias: alias, qmaild: qmaild, qmaill: qmaill, qmailp: qmailp, qmailq: qmailq, qmailr: qmailr, qmails: qmails}" \
            "{qmail: qmail, nofiles: nofiles}" \
            "{cc: 'cc -O2', ld: 'cc -s', spawn: 120, split: 23, patrn: '002', break: '-'}"
    """  # noqa: E501 (a CLI line with all seven accounts)
    return __utils__["qmail_build_inputs.conf_files"](home, users, groups, conf,
                                                       __utils__["qmail_validate.plain"])


def presets():
    """
    The releases the formula knows: preset name -> url, hash and traits
    (``runtime_ids``, ``errno_fix``, ``alloc_fix``, ``implicit_fix``). ``qmail_settings``
    checks ``qmail:source`` against them.

    CLI Example::

        salt '*' qmail_build.presets
    """
    return __utils__["qmail_build_inputs.presets"]()


# --------------------------------------------------------------------------
# What is installed (_utils/qmail_install.py)
# --------------------------------------------------------------------------
def record(home=None):
    """
    What the formula installed into ``home``: preset, source hash, conf-*
    values, how it got there (compiled here or a builder's shared tree) and
    when. Empty when nothing is recorded. ``home``: the formula's
    ``lookup:home`` when left out.

    CLI Example::

        salt '*' qmail_build.record
        salt '*' qmail_build.record /var/qmail
    """
    home = home or __salt__["qmail_settings.get"]("lookup:home")
    return __utils__["qmail_install.read_record"](_v("path")(home, "home"))


def _write_record(home, data):
    __utils__["qmail_install.write_record"](home, data, __utils__["qmail_files.atomic_write"])


def _wanted(source, conf):
    """The part of the record that decides whether to build: preset, source
    hash and conf-* contents."""
    _checked_source(source)
    _checked_conf(conf)
    return {"preset": source["preset"], "hash": source["hash"], "conf": dict(conf)}


def check_changes(home, source, conf):
    """
    Compare what is installed in ``home`` with ``source`` and ``conf``.
    Returns {} when they agree and the tree is there, else
    ``{"old": <record or None>, "new": <wanted>}``.

    CLI Example::

        salt '*' qmail_build.check_changes /var/qmail \
            "{preset: notqmail-1.09, url: /srv/notqmail-1.09.tar.xz, hash: 'sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52'}" \
            "{conf-qmail: /var/qmail}"
    """  # noqa: E501 (a CLI line with a whole sha256)
    home = _v("path")(home, "home")
    want = _wanted(source, conf)
    have = record(home)
    current = {k: have.get(k) for k in want} if have else None
    if current == want and os.path.isfile(os.path.join(home, "bin", "qmail-queue")):
        return {}
    return {"old": current, "new": want}


def queue_is_empty(home):
    """
    True when no message waits in ``home``/queue (queue/mess holds one file
    per message).

    CLI Example::

        salt '*' qmail_build.queue_is_empty /var/qmail
    """
    return __utils__["qmail_install.queue_is_empty"](_v("path")(home, "home"))


def install_tree(stage, home):
    """
    Install the staged qmail home ``stage`` into ``home`` with the staged
    owners and modes, the way qmail's ``make setup`` would, but safely on a
    live system: directories are created or re-moded, never emptied; files
    are replaced by rename (a running qmail-send keeps its binary); files
    that already exist under queue/ (lock/tcpto, lock/sendmutex,
    lock/trigger) are kept, so the queue survives. control/ and alias/ are
    only directories in the stage: their files are never touched. Returns
    the number of files written.

    CLI Example::

        salt '*' qmail_build.install_tree /var/cache/qmail-build/destdir/var/qmail /var/qmail
    """
    stage = _v("existing_dir")(stage, "stage")
    home = _v("own_dir")(home, "home")
    return __utils__["qmail_install.install_tree"](
        stage, home, __utils__["qmail_files.atomic_copy"],
        __utils__["qmail_files.atomic_symlink"])


def pack(stage, tarball):
    """
    Pack the staged qmail home ``stage`` into ``tarball`` (gzip), owners by
    name, paths relative to the qmail home; returns its sha256.

    CLI Example::

        salt '*' qmail_build.pack /var/cache/qmail-build/destdir/var/qmail /tmp/qmail.tar.gz
    """
    stage = _v("existing_dir")(stage, "stage")
    tarball = _v("path")(tarball, "tarball")
    return __utils__["qmail_install.pack"](stage, tarball, __utils__["qmail_files.replacing"])


def unpack(tarball, stage):
    """
    Extract a packed qmail home into a fresh ``stage``; owners are mapped by
    name to this host's accounts (run as root).

    CLI Example::

        salt '*' qmail_build.unpack /var/cache/salt/minion/files/base/x/qmail.tar.gz /tmp/stage
    """
    tarball = _v("existing_file")(tarball, "tarball")
    stage = _v("own_dir")(stage, "stage")  # emptied first: never a system folder
    __utils__["qmail_install.extract_into"](tarball, stage)
    return stage


# --------------------------------------------------------------------------
# The name of a build the fleet can share (qmail_fleet)
# --------------------------------------------------------------------------
def build_id(source, conf):
    """
    The name of a shareable build: a digest of what makes two builds the
    same (OS, release and architecture of the minion, preset, source hash,
    conf-* contents).

    CLI Example::

        salt '*' qmail_build.build_id \
            "{preset: notqmail-1.09, url: /srv/notqmail-1.09.tar.xz, hash: 'sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52'}" \
            "{conf-qmail: /var/qmail}"
    """  # noqa: E501 (a CLI line with a whole sha256)
    key = {
        "os": __grains__.get("osfinger") or __grains__.get("os"),
        "osarch": __grains__.get("osarch") or __grains__.get("cpuarch"),
        **_wanted(source, conf),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return f"{source['preset']}-{digest[:16]}"


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------
def _file_hash(path, algo):
    return salt.utils.hashutils.get_hash(path, form=algo)


def _forget_download(path):
    """Delete a rejected download and the cache folders made for it alone."""
    os.unlink(path)
    top = os.path.realpath(__opts__["cachedir"])
    folder = os.path.dirname(os.path.realpath(path))
    while folder.startswith(top + os.sep) and not os.listdir(folder):
        os.rmdir(folder)
        folder = os.path.dirname(folder)


def fetch(url, hash):  # pylint: disable=redefined-builtin
    """
    Get the source tarball ``url`` (an absolute path on the minion, or a
    salt://, https://, http:// or ftp:// URL, cached by Salt's file client)
    and verify it against ``hash`` (``sha256=HEX``). Returns the local path.
    On a mismatch a downloaded copy is deleted and nothing else happens.

    CLI Example::

        salt '*' qmail_build.fetch /srv/notqmail-1.09.tar.xz \
            hash=sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52
    """
    # file:///path as its path; no credentials, no host-part tricks.
    url = _v("source_url")(url, "qmail:source:url")
    algo, digest = parse_hash(hash)
    downloaded = False
    if os.path.isabs(url):
        path = url
        if not os.path.isfile(path):
            raise CommandExecutionError(f"qmail:source:url: {path} does not exist")
    else:
        try:
            path = __salt__["cp.cache_file"](url)
        except (MinionError, OSError) as exc:
            # An unreachable URL is bad input, not a crash: say which and why.
            raise CommandExecutionError(f"qmail:source:url: cannot fetch {url}: {exc}") from exc
        if not path:
            raise CommandExecutionError(f"qmail:source:url: cannot fetch {url}")
        downloaded = True
    actual = _file_hash(path, algo)
    if actual != digest:
        if downloaded:
            _forget_download(path)
        # The actual digest is not shown: of a file that is not the source
        # (a secret named by mistake or malice) it would tell too much.
        raise CommandExecutionError(
            f"qmail:source:hash: {url} does not match the expected hash ({algo} "
            f"{digest}); nothing was extracted"
        )
    return path


def verify_source(home, source, conf):
    """
    Fetch and verify the source tarball unless ``home`` already holds this
    build (then nothing is fetched). Returns the verified local path, or ""
    when there was nothing to verify. Raises on a mismatch (see ``fetch``).

    CLI Example::

        salt '*' qmail_build.verify_source /var/qmail \
            "{preset: notqmail-1.09, url: /srv/notqmail-1.09.tar.xz, hash: 'sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52'}" \
            "{conf-qmail: /var/qmail}"
    """  # noqa: E501 (a CLI line with a whole sha256)
    _v("fields")(source, "source", ("preset", "hash", "url"))
    if not check_changes(home, source, conf):
        return ""
    return fetch(source["url"], source["hash"])


def extract(tarball, dest):
    """
    Extract ``tarball`` (.tar, .tar.gz, .tar.xz, .tar.bz2) into a fresh
    ``dest`` and return the source directory (the one holding the Makefile).

    CLI Example::

        salt '*' qmail_build.extract /srv/notqmail-1.09.tar.xz /var/cache/qmail-build/src
    """
    tarball = _v("existing_file")(tarball, "tarball")
    dest = _v("own_dir")(dest, "dest")  # emptied first: never a system folder
    __utils__["qmail_install.extract_into"](tarball, dest)
    if os.path.isfile(os.path.join(dest, "Makefile")):
        return dest
    subdirs = [e.path for e in os.scandir(dest) if e.is_dir()]
    if len(subdirs) == 1 and os.path.isfile(os.path.join(subdirs[0], "Makefile")):
        return subdirs[0]
    raise CommandExecutionError(f"{tarball} holds no source tree with a Makefile")


def _patch(path, old, new):
    """Replace ``old`` by ``new`` once in the file; True when it changed."""
    try:
        with open(path, encoding="latin-1") as handle:
            text = handle.read()
    except FileNotFoundError:
        return False
    if new in text or old not in text:
        return False
    with open(path, "w", encoding="latin-1") as handle:
        handle.write(text.replace(old, new, 1))
    return True


def fix_errno(srcdir):
    """
    qmail-1.03's error.h declares ``extern int errno``, which clashes with
    glibc's thread-local errno; include <errno.h> instead (harmless
    elsewhere). Returns True when error.h was changed.

    CLI Example::

        salt '*' qmail_build.fix_errno /var/cache/qmail-build/src/qmail-1.03
    """
    srcdir = _v("existing_dir")(srcdir, "srcdir")
    return _patch(os.path.join(srcdir, "error.h"), "extern int errno;", "#include <errno.h>")


def fix_alloc(srcdir):
    """
    qmail-1.03's spawn.c calls alloc() without alloc.h: the compiler takes
    the result for an int, so on a 64-bit system the pointer is cut to 32
    bits and qmail-lspawn/qmail-rspawn die at once ("lost spawn
    connection"). Include alloc.h, as netqmail does. Returns True when
    spawn.c was changed.

    CLI Example::

        salt '*' qmail_build.fix_alloc /var/cache/qmail-build/src/qmail-1.03
    """
    srcdir = _v("existing_dir")(srcdir, "srcdir")
    return _patch(os.path.join(srcdir, "spawn.c"), '#include "stralloc.h"\n',
                  '#include "alloc.h"\n#include "stralloc.h"\n')


# What gcc 14 made errors, back to the warnings they were up to gcc 13: the
# same code as before, no other change of language (unlike -std=gnu89 or
# -fpermissive). None of the functions called undeclared returns a pointer
# (that was alloc(), see fix_alloc), so nothing is cut to 32 bits; and the
# try*.c probes that pick flock, vfork, sigaction and waitpid compile again
# instead of silently choosing the fallbacks.
IMPLICIT_FLAGS = "-Wno-error=implicit-function-declaration -Wno-error=implicit-int"


def fix_implicit(srcdir):
    """
    qmail-1.03 and netqmail-1.06 call functions they never declare
    (``close``, ``chdir``, their own ``open_read``...) and declare ``main``
    without a type, which gcc 14 refuses. Append ``IMPLICIT_FLAGS`` to
    conf-cc's first line (after ``write_conf``), so that they stay
    warnings, as with gcc up to 13. Returns True when conf-cc was changed.

    CLI Example::

        salt '*' qmail_build.fix_implicit /var/cache/qmail-build/src/netqmail-1.06
    """
    srcdir = _v("existing_dir")(srcdir, "srcdir")
    path = os.path.join(srcdir, "conf-cc")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if IMPLICIT_FLAGS in lines[0]:
        return False
    lines[0] = f"{lines[0].rstrip()} {IMPLICIT_FLAGS}"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    return True


def write_conf(srcdir, conf):
    """
    Write the ``conf-*`` files (conf-* name -> contents) into ``srcdir``;
    qmail reads the first line (conf-users/groups: the first lines).

    CLI Example::

        salt '*' qmail_build.write_conf /var/cache/qmail-build/src "{conf-qmail: /var/qmail}"
    """
    srcdir = _v("existing_dir")(srcdir, "srcdir")
    for name, value in _checked_conf(conf).items():
        with open(os.path.join(srcdir, name), "w", encoding="utf-8") as handle:
            handle.write(f"{value}\n")
    return sorted(conf)


def _log_tail(log, lines=20):
    """The last ``lines`` lines of a build log."""
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def make(srcdir, targets, log, destdir=None):
    """
    Run ``make TARGETS`` in ``srcdir`` (with ``DESTDIR`` when given),
    appending its output to ``log``. Raises CommandExecutionError with the
    log's tail when make fails, or when ``instcheck`` warns.

    CLI Example::

        salt "*" qmail_build.make /var/cache/qmail-build/src "[setup]" /tmp/build.log
    """
    srcdir = _v("existing_dir")(srcdir, "srcdir")
    targets = _v("names")(targets, "targets", r"[a-z][a-z0-9_.-]{0,63}", "a make target")
    log = _v("path")(log, "log")
    if destdir is not None:
        destdir = _v("own_dir")(destdir, "destdir")
    env = {"DESTDIR": destdir} if destdir else {}
    cmd = ["make", *targets]
    started = time.monotonic()
    res = __salt__["cmd.run_all"](
        cmd, cwd=srcdir, env=env, python_shell=False, redirect_stderr=True,
        output_loglevel="quiet", ignore_retcode=True,
    )
    output = res.get("stdout", "")
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"### {' '.join(cmd)}{' DESTDIR=' + destdir if destdir else ''}"
                     f" (in {srcdir})\n{output}\n")
        handle.write(f"### exit {res['retcode']} after {time.monotonic() - started:.1f} s\n")
    warned = [line for line in output.splitlines() if line.startswith("instcheck: warning")]
    if res["retcode"] != 0 or warned:
        what = f"exit status {res['retcode']}" if res["retcode"] else "instcheck warnings"
        raise CommandExecutionError(
            f"make {' '.join(targets)} failed ({what}); last lines of {log}:\n"
            + _log_tail(log)
        )
    return True


# --------------------------------------------------------------------------
# The whole build
# --------------------------------------------------------------------------
def _log_fix(log, applied, what):
    if applied:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"### {what}\n")


def _compile(source, conf, workdir, home, log, tarball):
    """Extract, conf-*, make setup (staged when the release allows), install, make check."""
    srcdir = extract(tarball, os.path.join(workdir, "src"))
    source_fixes = [
        ("errno_fix", fix_errno, "error.h: extern int errno -> #include <errno.h> (glibc)"),
        ("alloc_fix", fix_alloc, 'spawn.c: + #include "alloc.h" (64-bit pointers)'),
    ]
    for key, fix, what in source_fixes:
        _log_fix(log, source.get(key) and fix(srcdir), what)
    write_conf(srcdir, conf)
    # On the conf-cc that write_conf wrote.
    _log_fix(log, source.get("implicit_fix") and fix_implicit(srcdir),
             f"conf-cc: + {IMPLICIT_FLAGS} (gcc >= 14)")
    if not source.get("runtime_ids"):
        # Ids are baked in and there is no DESTDIR: qmail installs itself.
        make(srcdir, ["setup", "check"], log)
        return None, None
    destdir = os.path.join(workdir, "destdir")
    shutil.rmtree(destdir, ignore_errors=True)
    make(srcdir, ["setup"], log, destdir=destdir)
    stage = os.path.join(destdir, home.lstrip("/"))
    written = install_tree(stage, home)
    make(srcdir, ["check"], log)  # instcheck on the live home
    return stage, written


def build(home, source, conf, workdir="/var/cache/qmail-build", share=None):
    """
    Make ``home`` hold the qmail built from ``source`` with ``conf`` (the
    conf-* contents): unless the record says it already does, install the
    builder's shared tree when there is one, else fetch and verify the
    source, extract it, write conf-*, ``make setup`` (into a staging tree when
    the release supports it), install, ``make check``, and record. The
    builder (``share:builder`` = this minion) publishes its tree. Raises
    CommandExecutionError (with the build log's tail) on failure; the record
    is written only after a complete install, so the next run tries again.

    Returns {"record": ..., "compiled": bool, "from": "compiled" or
    "shared:<builder>", "published": bool, "files": n, "log": path}, or {}
    when nothing had to be done.

    CLI Example::

        salt '*' qmail_build.build /var/qmail \
            "{preset: notqmail-1.09, url: /srv/notqmail-1.09.tar.xz, hash: 'sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52'}" \
            "{conf-qmail: /var/qmail}"
    """  # noqa: E501 (a CLI line with a whole sha256)
    home = _v("own_dir")(home, "home")
    workdir = _v("own_dir")(workdir, "workdir")
    if _v("inside")(workdir, home) or _v("inside")(home, workdir):
        _v("fail")("workdir", f"{workdir!r} and the home {home!r} must not hold one another")
    _v("fields")(source, "source", ("preset", "hash", "url"))
    share = _v("mapping")(share or {}, "share")
    if not check_changes(home, source, conf):
        return {}
    previous = record(home)
    if (
        previous.get("conf", {}).get("conf-split") not in (None, conf.get("conf-split"))
        and not queue_is_empty(home)
    ):
        raise CommandExecutionError(
            "qmail:build:conf:split: the queue in "
            f"{home}/queue holds messages; conf-split can change only with an empty queue"
        )
    want = _wanted(source, conf)
    bid = build_id(source, conf)
    builder = share.get("builder") or ""
    me = __grains__["id"]
    result = {"compiled": False, "published": False, "files": 0, "id": bid}
    fleet = bool(builder and source.get("runtime_ids") and __salt__["qmail_fleet.enabled"]())
    if fleet:
        manifest = __salt__["qmail_fleet.find"](builder, bid,
                                                0 if builder == me else share.get("wait", 600))
        if manifest:
            os.makedirs(workdir, mode=0o700, exist_ok=True)
            written = __salt__["qmail_fleet.install"](builder, manifest, workdir, home)
            if written is not None:
                result.update(files=written, **{"from": f"shared:{builder}"})
                data = dict(want, installed_from=result["from"], id=bid, time=time.time())
                _write_record(home, data)
                result["record"] = data
                return result
    tarball = fetch(source["url"], source["hash"])  # verified before anything else
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    build_log = os.path.join(workdir, "build.log")
    with open(build_log, "w", encoding="utf-8") as handle:
        handle.write(f"### qmail build {bid} of {source['url']} ({source['hash']})\n")
    sharing = fleet and builder == me
    if sharing:
        __salt__["qmail_fleet.announce"](workdir, bid)
    log.info("qmail_build: compiling %s into %s (build log %s)", bid, home, build_log)
    stage, written = _compile(source, conf, workdir, home, build_log, tarball)
    result.update(compiled=True, files=written, log=build_log, **{"from": "compiled"})
    data = dict(want, installed_from="compiled", id=bid, time=time.time())
    if sharing:
        result["published"] = __salt__["qmail_fleet.publish"](stage, workdir, bid, want)
        result["sharing"] = True
    _write_record(home, data)
    result["record"] = data
    # Keep the log (and a builder's shared tarball); drop the build trees.
    for tree in ("src", "destdir"):
        shutil.rmtree(os.path.join(workdir, tree), ignore_errors=True)
    return result
