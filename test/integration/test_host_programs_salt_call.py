"""
What needs daemontools' or ucspi-tcp's own programs (svstat, tcprules,
tcprulescheck; bin/host-packages installs them), moved here from test/unit
so that unit needs nothing but the venv: the CLI examples that run them,
the relay rules as the real tcprules compiles them, and
``qmail_service.tcp_rules_compiled`` on the real tcprules.
"""

import importlib.util
import inspect
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
UCSPI_BIN = os.path.dirname(shutil.which("tcprules") or "/usr/bin/tcprules")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES = _load("cli_examples", REPO / "test" / "unit" / "test_cli_examples.py")


@pytest.mark.parametrize(("function", "argv"), EXAMPLES.CALLS_ON_HOST,
                         ids=[" ".join(argv[2:]) for _, argv in EXAMPLES.CALLS_ON_HOST])
def test_cli_example_runs(salt_call, tmp_path, function, argv):
    """As test/unit/test_cli_examples.py runs the others, through salt-call."""
    scratch = EXAMPLES.make_scratch(tmp_path / "root")
    module, name = function.split(".")
    source = _load(f"{module}_source", REPO / "_modules" / f"{module}.py")
    args, kwargs = EXAMPLES.arguments(function, argv, scratch,
                                      inspect.signature(getattr(source, name)).parameters)
    assert all(isinstance(v, str) for v in [*args, *kwargs.values()]), (args, kwargs)
    before = os.listdir("/var/lib")
    salt_call.run(argv[2], *args, *[f"{k}={v}" for k, v in kwargs.items()])  # exits 0
    assert os.listdir("/var/lib") == before


@pytest.fixture(scope="module")
def relay_cdb(salt_call_synced, tmp_path_factory):
    """The rules of two relay client networks, compiled by the real tcprules."""
    rules = salt_call_synced.run("qmail_service.tcp_rules", '["10.1.2.0/24", "10.9.0.5/32"]')
    folder = tmp_path_factory.mktemp("relay")
    (folder / "tcp.smtp").write_text("".join(f"{r}\n" for r in rules))
    subprocess.run(f"tcprules {folder}/tcp.smtp.cdb {folder}/tmp < {folder}/tcp.smtp",
                   shell=True, check=True)
    return folder / "tcp.smtp.cdb"


@pytest.mark.parametrize("address, relay", [
    ("10.1.2.200", True), ("10.1.3.1", False), ("10.9.0.5", True), ("10.9.0.4", False),
    ("192.0.2.1", False), ("10.1.2.0", True),
])
def test_compiled_rules_grant_relaying_to_relay_clients_only(relay_cdb, address, relay):
    out = subprocess.run(["tcprulescheck", str(relay_cdb)], env={"TCPREMOTEIP": address},
                         capture_output=True, text=True, check=True).stdout
    assert "allow connection" in out
    assert ("RELAYCLIENT=" in out) is relay


def _compiled(salt_call, rules, test=False):
    (ret,) = salt_call.run("state.single", "qmail_service.tcp_rules_compiled",
                           f"name={rules}", f"ucspi_bin={UCSPI_BIN}",
                           *(["test=True"] if test else []), check=False).values()
    return ret


@pytest.mark.parametrize("test_mode", [False, True], ids=["apply", "test-mode"])
def test_tcp_rules_compiled_when_missing(salt_call, tmp_path, test_mode):
    rules = tmp_path / "tcp.smtp"
    rules.write_text('10.1.2.:allow,RELAYCLIENT=""\n:allow\n')
    ret = _compiled(salt_call, rules, test=test_mode)
    assert ret["changes"] == {"compiled": f"{rules}.cdb"}
    assert ret["result"] is (None if test_mode else True)
    assert (tmp_path / "tcp.smtp.cdb").exists() is not test_mode
    if not test_mode:
        again = _compiled(salt_call, rules)
        assert again["result"] is True and again["changes"] == {}
