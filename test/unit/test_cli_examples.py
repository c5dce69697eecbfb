"""
Every public execution function has a Salt-style ``CLI Example::`` and
every example runs: parsed from the docstring as the ``salt`` command would
parse it (``salt.utils.args.parse_input``) and called on Salt's own loader.

The host is never touched: every absolute path in an example is moved into
a scratch root laid out here (a qmail home with stand-in programs, a Debian
sendmail tree, sendmail's queue with one message, an rc.conf...), and the
arguments that default to a system path (``home``, ``journal``, ``lock``...)
are given the scratch one. The official source hash in the build examples
is swapped for the scratch tarball's. Examples that change a host-wide
service manager or alternatives run with ``test=True``; the few that need
qmail running under its supervisor are listed in ``NEEDS_A_LAB_HOST`` with
the reason, so a new function cannot slip in unrun. The few that run one of
daemontools' or ucspi-tcp's programs (``ON_HOST``) run in
test/integration/test_host_programs_salt_call.py, through ``salt-call`` on a
machine that has them: unit needs nothing but the venv.
"""

import ast
import hashlib
import inspect
import os
import pathlib
import pwd
import re
import shlex
import shutil
import sys

import pytest
import salt.utils.args

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from orchestration_fixture import make_tarball  # noqa: E402

from lab import tls  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "_modules").glob("*.py"))
OFFICIAL_HASH = "sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52"
# The SMTP AUTH patch's hash in the qmail_patches examples: swapped for the
# scratch patch's (a patch that adds one file, so it applies to any tree).
AUTH_PATCH_HASH = "sha256=c7627aca0af336b4fb1f05a3529696f2508caac2746f8afe05700520057aaf2f"
SCRATCH_PATCH = "--- /dev/null\n+++ b/PATCHED\n@@ -0,0 +1 @@\n+patched by the scratch patch\n"
# Act on the host's own service manager or alternatives: predicted only.
TEST_MODE = {"qmail_sendmail.boot_disable", "qmail_sendmail.alternative"}
# Need qmail-send running under a supervisor (systemd, svscan): the lab's
# test_service_lab drives them through the states on real hosts.
NEEDS_A_LAB_HOST = {
    "qmail_build.build": "compiles qmail and installs it for its accounts (test_build_lab)",
    "qmail_service.unit_state": "asks systemd, which this machine does not run as PID 1",
    "qmail_service.hup": "signals a running qmail-send",
    "qmail_service.flush": "signals a running qmail-send",
    "qmail_service.start": "starts qmail-send under systemd",
    "qmail_service.restart": "restarts a running qmail-send",
    "qmail_service.reload_inetd": "its first example expects a running inetd",
}
# Run a program of daemontools or ucspi-tcp (the example, as " ".join(argv[2:])).
ON_HOST = {
    "qmail_service.svstat qmail-smtpd": "svstat (daemontools)",
    "qmail_service.send_pid supervisor=daemontools": "svstat (daemontools)",
    "qmail_service.compile_tcp_rules /etc/tcp.smtp": "tcprules (ucspi-tcp)",
}
# Arguments that default to a system path, and their place in the scratch root.
SCRATCH_DEFAULTS = {
    "home": "var/qmail",
    "journal": "var/lib/qmail-formula/sendmail.json",
    "ledger": "var/lib/qmail-formula/ledger.json",
    "lock": "var/lib/qmail-formula/mqueue.lock",
    "service_dir": "etc/service",
    "qmail_queue": "var/qmail/bin/qmail-queue",
    "queues": ["var/spool/mqueue"],
    "keys_dir": "etc/qmail-filter/dkim",
}
QF = (b"V8\nT1796120467\nK1796120467\nN1\nP60257\nFs\n$_localhost [127.0.0.1]\n"
      b"S<alice@example.org>\nrRFC822; bob@example.org\nRPFD:<bob@example.org>\n"
      b"H??Subject: one\nH??Message-ID: <m1@example.org>\n.\n")
STAND_INS = {
    "bin/sendmail": "#!/bin/sh\ncat >/dev/null\n",
    "bin/qmail-qread": "#!/bin/sh\nexit 0\n",
    "bin/qmail-qstat": ("echo 'messages in queue: 0'\n"
                        "echo 'messages in queue but not yet preprocessed: 0'\n"),
    "bin/qmail-newmrh": "#!/bin/sh\n: > control/morercpthosts.cdb\n",
    # qmail-queue(8): the message on fd 0, the envelope on fd 1.
    "bin/qmail-queue": "#!/bin/sh\ncat >/dev/null\ncat <&1 >/dev/null\nexit 0\n",
}


def _examples():
    """(function, [argv, ...]) for every public function, from its docstring."""
    found = []
    for module in MODULES:
        source = (REPO / "_modules" / f"{module}.py").read_text()
        tree = ast.parse(source)
        aliases = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == \
                    "__func_alias__":
                aliases = ast.literal_eval(node.value)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            doc = ast.get_docstring(node) or ""
            block = doc.split("CLI Example::", 1)[1] if "CLI Example::" in doc else ""
            # A backslash at a line's end continues the command, as in a shell.
            block = re.sub(r"\\\n\s*", " ", block)
            commands, pending = [], ""
            for line in block.split("\n"):
                pending = f"{pending}\n{line.strip()}" if pending else line.strip()
                if not pending.startswith("salt "):
                    pending = ""
                    continue
                try:  # a quoted argument may go on over lines
                    commands.append(shlex.split(pending))
                except ValueError:
                    continue
                pending = ""
            found.append((f"{module}.{aliases.get(node.name, node.name)}", commands))
    return found


EXAMPLES = _examples()
CALLS = [(fun, argv) for fun, commands in EXAMPLES for argv in commands
         if fun not in NEEDS_A_LAB_HOST and " ".join(argv[2:]) not in ON_HOST]
CALLS_ON_HOST = [(fun, argv) for fun, commands in EXAMPLES for argv in commands
                 if " ".join(argv[2:]) in ON_HOST]


def test_every_public_function_has_a_cli_example_of_its_own():
    missing = [fun for fun, commands in EXAMPLES
               if not any(argv[2] == fun for argv in commands)]
    assert missing == []
    assert all(argv[:2] == ["salt", "*"] for _, argv in CALLS + CALLS_ON_HOST)
    assert len(CALLS_ON_HOST) == len(ON_HOST)


def test_the_examples_are_those_the_loader_offers(modules):
    public = {f for f in modules if f.split(".")[0] in MODULES}
    assert {fun for fun, _ in EXAMPLES} == public
    assert set(NEEDS_A_LAB_HOST) <= public


@pytest.fixture
def scratch(tmp_path):
    """The scratch root an example works in (each its own: extract empties
    its destination, restore undoes what neutralise did...)."""
    return make_scratch(tmp_path / "root")


def make_scratch(root):
    """Lay out the scratch root at ``root``; {"root": root, "hash": the
    scratch tarball's hash}."""
    home = root / "var/qmail"
    for folder in ("control", "alias", "queue/mess/0", "bin", "supervise/qmail-send"):
        (home / folder).mkdir(parents=True)
    for name, text in STAND_INS.items():
        (home / name).write_text(text)
        (home / name).chmod(0o755)
    (home / "control/me").write_text("hostname.cla.kobe-u.ac.jp\n")
    (home / "control/smtproutes").write_text(":mail.example.org\n")
    # Debian's sendmail, as the alternatives lay it out.
    real = root / "usr/libexec/sendmail/sendmail"
    real.parent.mkdir(parents=True)
    shutil.copy("/bin/true", real)
    for link, alt in (("usr/sbin/sendmail", "sendmail"), ("usr/lib/sendmail", "lib.sendmail")):
        (root / "etc/alternatives").mkdir(parents=True, exist_ok=True)
        (root / "etc/alternatives" / alt).symlink_to(real)
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(root / "etc/alternatives" / alt)
    (root / "etc/rc.conf").write_text('sendmail_enable="YES"\n')
    (root / "etc/mail").mkdir()
    (root / "etc/mail/mailer.conf").write_text("sendmail\t/usr/libexec/sendmail/sendmail\n")
    (root / "etc/tcp.smtp").write_text("127.:allow,RELAYCLIENT=\"\"\n:allow\n")
    (root / "etc/service").mkdir()
    # qmail:filter's DKIM key folder, with one key (qmail_dkim examples).
    (root / "etc/qmail-filter/dkim").mkdir(parents=True)
    (root / "etc/qmail-filter/dkim/s2026.example.org.key").write_bytes(tls.key_pem(
        tls.new_key("ed25519")).encode())
    queue = root / "var/spool/mqueue"
    queue.mkdir(parents=True)
    (queue / "qf6B1AL7t3000206").write_bytes(QF)
    (queue / "df6B1AL7t3000206").write_bytes(b"body\n")
    # A qmail-like source tree for the build steps, and its tarball.
    tarball, digest = make_tarball(root / "dl", root / "fail", root / "compiles.log")
    (root / "srv").mkdir()
    shutil.copy(tarball, root / "srv/notqmail-1.09.tar.xz")
    (root / "srv/auth.patch").write_text(SCRATCH_PATCH)
    for src in ("qmail-1.03", "netqmail-1.06"):
        tree = root / "var/cache/qmail-build/src" / src
        tree.mkdir(parents=True)
        (tree / "error.h").write_text("extern int errno;\n")
        (tree / "spawn.c").write_text('#include "stralloc.h"\n')
        (tree / "conf-cc").write_text("cc -O2\n")
    (root / "var/cache/qmail-build/src/Makefile").write_text("setup:\n\t@echo setup\n")
    stage = root / "var/cache/qmail-build/destdir/var/qmail/bin"
    stage.mkdir(parents=True)
    (stage / "qmail-inject").write_text("#!/bin/sh\n")
    cached = root / "var/cache/salt/minion/files/base/x/qmail.tar.gz"
    cached.parent.mkdir(parents=True)
    shutil.copy(tarball, cached)
    (root / "tmp").mkdir()
    (root / "var/lib/qmail-formula").mkdir(parents=True)
    # qmail:tls: a key, its certificate and tlswrapper's bundle of the two.
    cert, key = tls.CA().issue("hostname.cla.kobe-u.ac.jp")
    (root / "etc/qmail-tls").mkdir()
    for name, text in (("key.pem", key), ("cert.pem", cert), ("smtpd.pem", key + cert)):
        (root / "etc/qmail-tls" / name).write_text(text)
    # multilog's folder of qmail-smtpd (daemontools).
    (root / "var/log/qmail/qmail-smtpd").mkdir(parents=True)
    (root / "var/log/qmail/qmail-smtpd/current").write_text(
        "@400000006925a1b2 tcpserver: status: 1/40\n")
    patch_digest = "sha256=" + hashlib.sha256(SCRATCH_PATCH.encode()).hexdigest()
    return {"root": root, "hash": digest, "patch_hash": patch_digest}


def _into(value, scratch):
    """``value`` with every absolute path moved into the scratch root."""
    root = str(scratch["root"])
    if isinstance(value, str):
        if value == OFFICIAL_HASH:
            return scratch["hash"]
        if value == AUTH_PATCH_HASH:
            return scratch["patch_hash"]
        if value.startswith("$(cat ") and value.endswith(")"):
            return pathlib.Path(_into(value[6:-1], scratch)).read_text()
        return root + value if value.startswith("/") else value
    if isinstance(value, list):
        return [_into(v, scratch) for v in value]
    if isinstance(value, dict):
        return {k: _into(v, scratch) for k, v in value.items()}
    return value


def arguments(function, argv, scratch, params):
    """The example's arguments as Salt parses them, moved into the scratch
    root, with the scratch defaults of the parameters it leaves out."""
    args, kwargs = salt.utils.args.parse_input(argv[3:], condition=False)
    args, kwargs = _into(args, scratch), _into(kwargs, scratch)
    given = set(list(params)[:len(args)]) | set(kwargs)
    for name, place in SCRATCH_DEFAULTS.items():
        if name in params and name not in given:
            kwargs[name] = _into(["/" + p for p in place] if isinstance(place, list)
                                 else "/" + place, scratch)
    if "account" in params and "account" not in given:  # qmail's accounts are not here
        kwargs["account"] = pwd.getpwuid(os.getuid()).pw_name
    if function == "qmail_mqueue.handback":
        kwargs.setdefault("sendmail", str(scratch["root"] / "var/qmail/bin/sendmail"))
    if function in TEST_MODE:
        kwargs["test"] = True
    return args, kwargs


@pytest.mark.parametrize(("function", "argv"), CALLS,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(CALLS)])
def test_cli_example_runs(modules, scratch, function, argv):
    fun = modules[argv[2]]
    args, kwargs = arguments(function, argv, scratch,
                             inspect.signature(fun.func).parameters)
    before = os.listdir("/var/lib") if os.path.isdir("/var/lib") else []
    fun(*args, **kwargs)  # raises on any error
    assert (os.listdir("/var/lib") if os.path.isdir("/var/lib") else []) == before
