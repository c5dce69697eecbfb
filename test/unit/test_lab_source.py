"""
lab.source: where the real-qmail tests get their tarball. Against a real
HTTP server on loopback standing in for the official download: fetched once
and cached, its hash checked, and an unreachable URL reported (the reason
the tests then give for skipping).
"""

import hashlib
import http.server
import threading

import pytest

from lab import source

PAYLOAD = b"not qmail, just bytes standing in for a tarball\n" * 100


class Handler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.hits = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/notqmail-9.99.tar.xz"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAIL_LAB_DIR", str(tmp_path))
    monkeypatch.delenv("QMAIL_SOURCE", raising=False)
    # No shared copy: these tests are about the download.
    monkeypatch.setenv("QMAIL_SHARED_SOURCES", str(tmp_path / "no-shared"))
    return tmp_path / "sources"


def official_is(monkeypatch, url, sha256):
    monkeypatch.setattr(source, "official", lambda preset=source.DEFAULT_PRESET: (url, sha256))


def test_official_is_the_formulas_default_release():
    url, sha256 = source.official()
    assert url.endswith("/notqmail-1.09.tar.xz")
    assert sha256 == "e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52"


def test_downloaded_once_checked_and_cached(server, cache, monkeypatch):
    official_is(monkeypatch, server, hashlib.sha256(PAYLOAD).hexdigest())
    first = source.locate()
    assert first.path == cache / "notqmail-9.99.tar.xz"
    assert first.path.read_bytes() == PAYLOAD
    assert first.salt_hash == "sha256=" + hashlib.sha256(PAYLOAD).hexdigest()
    assert source.locate() == first
    assert Handler.hits == 1
    assert [p.name for p in cache.iterdir()] == ["notqmail-9.99.tar.xz"]


def test_a_download_with_another_hash_is_refused_and_not_kept(server, cache, monkeypatch):
    official_is(monkeypatch, server, "0" * 64)
    with pytest.raises(source.SourceError, match="sha256 is"):
        source.locate()
    assert list(cache.iterdir()) == []


def test_an_unreachable_url_says_why(cache, monkeypatch):
    official_is(monkeypatch, "http://127.0.0.1:9/notqmail-1.09.tar.xz", "0" * 64)
    with pytest.raises(source.SourceUnavailable, match="QMAIL_SOURCE is not set and .* "
                       "cannot be downloaded .*refused"):
        source.locate()
    assert list(cache.iterdir()) == []


def test_qmail_source_wins_and_must_be_a_file(tmp_path, monkeypatch):
    tarball = tmp_path / "mine.tar.gz"
    tarball.write_bytes(PAYLOAD)
    monkeypatch.setenv("QMAIL_SOURCE", str(tarball))
    monkeypatch.setattr(source, "official", lambda *a: pytest.fail("no download wanted"))
    assert source.locate() == source.QmailSource(tarball, hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setenv("QMAIL_SOURCE", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(source.SourceError, match="missing.tar.gz is not a file"):
        source.locate()


def test_each_preset_has_a_variable_of_its_own(tmp_path, monkeypatch):
    assert source.official("qmail-1.03")[0] == "https://cr.yp.to/software/qmail-1.03.tar.gz"
    tarball = tmp_path / "qmail-1.03.tar.gz"
    tarball.write_bytes(PAYLOAD)
    monkeypatch.delenv("QMAIL_SOURCE", raising=False)
    monkeypatch.setenv("QMAIL_SOURCE_QMAIL_1_03", str(tarball))
    monkeypatch.setattr(source, "official", lambda *a: pytest.fail("no download wanted"))
    assert source.locate("qmail-1.03").path == tarball
    assert source.env_name("netqmail-1.06") == "QMAIL_SOURCE_NETQMAIL_1_06"
    assert source.env_name() == "QMAIL_SOURCE"


def test_the_shared_copy_comes_before_the_download(tmp_path, cache, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notqmail-1.09.tar.xz").write_bytes(PAYLOAD)
    (shared / "qmail-1.03.tar.gz").write_bytes(PAYLOAD * 2)
    monkeypatch.setenv("QMAIL_SHARED_SOURCES", str(shared))
    monkeypatch.delenv("QMAIL_SOURCE_QMAIL_1_03", raising=False)
    monkeypatch.setattr(source, "official", lambda *a: pytest.fail("no download wanted"))
    got = source.locate()
    assert got == source.QmailSource(shared / "notqmail-1.09.tar.xz",
                                     hashlib.sha256(PAYLOAD).hexdigest())
    assert source.locate("qmail-1.03").sha256 == hashlib.sha256(PAYLOAD * 2).hexdigest()
    # The variable still wins over the shared copy.
    mine = tmp_path / "mine.tar.xz"
    mine.write_bytes(b"x")
    monkeypatch.setenv("QMAIL_SOURCE", str(mine))
    assert source.locate().path == mine


def test_the_projects_shared_folder_is_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("QMAIL_SHARED_SOURCES", raising=False)
    assert source.shared_dir() == source.config.REPO_ROOT.parent / "shared" / "sources"


def test_the_smtp_auth_patch_variable_then_the_checked_shared_copy(tmp_path, monkeypatch):
    mine = tmp_path / "auth.patch"
    mine.write_bytes(b"--- a/x\n+++ b/x\n")
    monkeypatch.setenv("QMAIL_PATCH_SMTP_AUTH", str(mine))
    got = source.smtp_auth_patch()
    assert got.path == mine and got.sha256 == hashlib.sha256(mine.read_bytes()).hexdigest()
    monkeypatch.setenv("QMAIL_PATCH_SMTP_AUTH", str(tmp_path / "missing"))
    with pytest.raises(source.SourceError, match="QMAIL_PATCH_SMTP_AUTH=.* is not a file"):
        source.smtp_auth_patch()
    monkeypatch.delenv("QMAIL_PATCH_SMTP_AUTH")
    shared = tmp_path / "shared"
    monkeypatch.setenv("QMAIL_SHARED_SOURCES", str(shared))
    with pytest.raises(source.SourceUnavailable, match="no SMTP AUTH patch"):
        source.smtp_auth_patch()
    (shared / "patches").mkdir(parents=True)
    (shared / source.SMTP_AUTH_PATCH).write_bytes(b"not the README's patch\n")
    with pytest.raises(source.SourceError, match="not the README's"):
        source.smtp_auth_patch()
