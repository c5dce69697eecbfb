"""
lab.master.LabMaster.formula_from: the master's formula view (a folder of
symlinks) serves another tree's ``qmail`` and ``_*`` folders inside the
``with`` block, and the checkout's again after it, also after an error.
No master is started: only the view is exercised.
"""

import os

import pytest

from lab.master import LabMaster


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
