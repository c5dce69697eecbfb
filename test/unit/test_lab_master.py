"""
lab.master.LabMaster.formula_from: the master's formula view (a folder of
symlinks) serves another tree's ``qmail`` and ``_*`` folders inside the
``with`` block, and the checkout's again after it, also after an error.
No master is started: only the view is exercised.
"""

import json
import os

import pytest

from lab.master import _NO_MATCH, LabMaster, _json_documents, _reads_pillar


def _links(view):
    return {p.name: os.readlink(p) for p in view.iterdir()}


def test_formula_from_serves_another_tree_then_the_checkout_again(tmp_path):
    checkout, old, view = tmp_path / "checkout", tmp_path / "old", tmp_path / "view"
    for part in ("qmail", "_modules", "_utils", "_states"):
        (checkout / part).mkdir(parents=True)
    for part in ("qmail", "_modules", "_beacons", "docs", "__pycache__"):
        (old / part).mkdir(parents=True)
    view.mkdir()
    for part in ("qmail", "_modules", "_utils", "_states"):
        (view / part).symlink_to(checkout / part)
    master = LabMaster.__new__(LabMaster)  # no daemon: the view only
    master.formula_root = view
    before = _links(view)
    with master.formula_from(old):
        assert _links(view) == {p: str(old / p) for p in ("qmail", "_modules", "_beacons")}
    assert _links(view) == before
    with pytest.raises(RuntimeError), master.formula_from(old):
        raise RuntimeError("an apply failed")
    assert _links(view) == before


def test_set_pillar_refreshes_only_the_minions_whose_pillar_changed(tmp_path):
    """A fixture hands every host's pillar again when it changes one: only
    that host's minion is to refresh, and a dict changed in place and
    handed again counts as a change. The refresh waits for a command that
    reads the pillar in memory (below), then runs once for all of them."""
    master = LabMaster.__new__(LabMaster)  # no daemon: the pillar files only
    master.pillar_root = tmp_path
    (tmp_path / "minions").mkdir()
    master.pillars, master._stale = {}, set()
    told = []
    master.salt = lambda target, fun, *args, **kwargs: told.append((list(target), fun))
    spool = {"qmail": {"role": "spool"}}
    client = {"qmail": {"role": "client", "spool": "spool.example"}}
    master.set_pillar({"spool.example": spool, "client.example": client}, refresh=False)
    master.set_pillar({"spool.example": spool, "client.example": client})
    assert master._stale == set()
    spool["qmail"]["relay_clients"] = ["192.0.2.1/32"]
    master.set_pillar({"spool.example": spool, "client.example": client})
    assert "192.0.2.1/32" in (tmp_path / "minions" / "spool_example.sls").read_text()
    master.set_pillar({"new.example": {}})
    assert master._stale == {"spool.example", "new.example"} and told == []
    master.refresh_pillars()
    assert told == [(["new.example", "spool.example"], "saltutil.refresh_pillar")]
    assert master._stale == set()


@pytest.mark.parametrize(("fun", "reads"), [
    ("state.apply", False), ("state.sls_id", False), ("test.ping", False),
    ("saltutil.sync_utils,saltutil.sync_modules", False), ("saltutil.refresh_pillar", False),
    ("saltutil.running", False), ("grains.setval", False),
    ("qmail_service.queue_status", True), ("pillar.get", True), ("cmd.run", True),
    ("saltutil.sync_utils,qmail_service.logs", True)])
def test_which_commands_get_the_changed_pillar_first(fun, reads):
    """State functions compile the pillar afresh for their run; execution
    modules read the minion's pillar in memory (the formula's settings)."""
    assert _reads_pillar(fun) is reads


def test_salt_json_output_is_one_document_per_minion_merged():
    """``salt --out=json`` (not ``--static``) prints one JSON object per
    minion as each returns, with Salt's json outputter; the lab merges them.
    No minion matched: Salt's sentence, then ``{}``."""
    import salt.config
    import salt.output

    opts = salt.config.master_config(None)
    docs = [{"a.example": {"state_|-x": {"result": True}}}, {"b.example": "Minion did not"
                                                             " return. [No response]"}]
    text = "".join(salt.output.out_format(doc, "json", opts) + "\n" for doc in docs)
    assert text.count("\n{") == 1  # two documents, the second on a line of its own
    assert _json_documents(text) == {**docs[0], **docs[1]}
    assert _json_documents("") == {}
    assert _json_documents(_NO_MATCH + "{}\n") == {}
    with pytest.raises(json.JSONDecodeError):
        _json_documents('{"a.example": true}\n[1]\n')
