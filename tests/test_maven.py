"""Artifacts are verified against checksums; a tampered download leaves nothing in the cache."""
from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reranker_core.errors import LocalNodeError
from reranker_plugin.node.maven import Artifact, MavenCache

ART = Artifact("org.example", "thing", "1.0", "zip")


@pytest.fixture
def repository(tmp_path):
    """A real HTTP server on loopback serving a Maven-layout folder."""
    root = tmp_path / "repo"
    folder = root / "org" / "example" / "thing" / "1.0"
    folder.mkdir(parents=True)
    payload = b"zip-bytes" * 1000
    (folder / ART.filename).write_bytes(payload)
    handler = partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                      directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", folder, payload
    server.shutdown()


def test_download_verified_by_maven_checksum_then_reused(repository, tmp_path):
    url, folder, payload = repository
    (folder / f"{ART.filename}.sha1").write_text(hashlib.sha1(payload).hexdigest())
    cache = MavenCache(url, tmp_path / "cache")
    path = cache.fetch(ART)
    assert path.read_bytes() == payload
    (folder / ART.filename).unlink()  # the second fetch must not need the server's file
    assert cache.fetch(ART) == path


def test_checksum_mismatch_leaves_nothing(repository, tmp_path):
    url, folder, _ = repository
    (folder / f"{ART.filename}.sha512").write_text("0" * 128)
    cache = MavenCache(url, tmp_path / "cache")
    with pytest.raises(LocalNodeError, match="checksum mismatch"):
        cache.fetch(ART)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_pinned_sha256_is_used_when_maven_publishes_none(repository, tmp_path):
    url, _, payload = repository
    with pytest.raises(LocalNodeError, match="none is pinned"):
        MavenCache(url, tmp_path / "a").fetch(ART)
    pinned = MavenCache(url, tmp_path / "b", {ART.filename: hashlib.sha256(payload).hexdigest()})
    assert pinned.fetch(ART).read_bytes() == payload


def test_unreachable_repository_is_a_clear_error(tmp_path):
    with pytest.raises(LocalNodeError, match="cannot reach Maven Central"):
        MavenCache("http://127.0.0.1:9", tmp_path).fetch(ART)
