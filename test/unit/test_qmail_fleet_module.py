"""qmail_fleet's reads of the fleet share, with the master's answers given
by stand-ins for Salt's ``cp`` functions (the lab's fleet tests use a real
master)."""

import hashlib
import io
import json
import tarfile

import pytest

BUILDER = "build1.cla.kobe-u.ac.jp"
BUILD_ID = "notqmail-1.09-0123456789abcdef"
FOLDER = f"{BUILDER}/qmail-build"
MANIFEST = {"id": BUILD_ID, "sha256": "0" * 64, "builder": BUILDER, "record": {}}


class Master:
    """What the master serves: ``files`` (path below salt:// -> text or a
    local path), each failing ``fail`` times first as Salt's minionfs does
    when two workers create its hash cache folder at once (an empty answer
    for a file it lists)."""

    def __init__(self, files, fail=0):
        self.files, self.fail, self.asked = files, fail, []

    def serve(self, url, *args, **kwargs):
        path = url[len("salt://"):]
        self.asked.append(path)
        if path not in self.files:
            return False
        if self.fail:
            self.fail -= 1
            return ""
        return self.files[path]

    def list_master(self, prefix="", **kwargs):
        return [path for path in self.files if path.startswith(prefix)]


@pytest.fixture
def master(modules, monkeypatch):
    def use(files, fail=0):
        served = Master(files, fail)
        module_globals = modules.qmail_fleet.find.func.__globals__
        monkeypatch.setitem(module_globals, "__salt__", {
            "cp.get_file_str": served.serve, "cp.cache_file": served.serve,
            "cp.list_master": served.list_master})
        return served
    return use


@pytest.mark.parametrize("fail", [0, 1, 2])
def test_a_listed_manifest_the_master_failed_to_serve_is_asked_for_again(modules, master, fail):
    served = master({f"{FOLDER}/{BUILD_ID}.json": json.dumps(MANIFEST)}, fail=fail)
    assert modules.qmail_fleet.find(BUILDER, BUILD_ID) == MANIFEST
    assert served.asked == [f"{FOLDER}/{BUILD_ID}.json"] * (fail + 1)


def test_a_master_that_keeps_failing_is_asked_three_times_then_the_host_compiles(modules, master):
    served = master({f"{FOLDER}/{BUILD_ID}.json": json.dumps(MANIFEST)}, fail=5)
    assert modules.qmail_fleet.find(BUILDER, BUILD_ID) is None
    assert len(served.asked) == 3


def test_a_tree_nobody_published_is_asked_for_once(modules, master):
    served = master({})
    assert modules.qmail_fleet.find(BUILDER, BUILD_ID) is None
    assert served.asked == [f"{FOLDER}/{BUILD_ID}.json"]


def test_the_tarball_failed_once_is_fetched_again_and_installed(modules, master, tmp_path):
    stage = io.BytesIO()
    with tarfile.open(fileobj=stage, mode="w:gz") as tar:
        data = b"#!/bin/sh\n"
        info = tarfile.TarInfo("bin/qmail-send")
        info.size, info.mode = len(data), 0o711
        tar.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "tree.tar.gz"
    tarball.write_bytes(stage.getvalue())
    manifest = dict(MANIFEST, sha256=hashlib.sha256(stage.getvalue()).hexdigest())
    served = master({f"{FOLDER}/{BUILD_ID}.tar.gz": str(tarball)}, fail=1)
    workdir, home = tmp_path / "work", tmp_path / "qmail"
    workdir.mkdir()
    written = modules.qmail_fleet.install(BUILDER, manifest, str(workdir), str(home))
    assert written and (home / "bin" / "qmail-send").read_bytes() == data
    assert served.asked == [f"{FOLDER}/{BUILD_ID}.tar.gz"] * 2
