"""nasx.data.download against a small official-format archive served from 127.0.0.1 (no internet here)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import assert_matches, official_archive

from nasx.data import CIFAR10_MD5, CIFAR10_URL, DataError, download, load

ARCHIVE = "cifar-10-python.tar.gz"


class _Server:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 from a thread; counts the GET requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the request log
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Server, bytes, tuple]]:
    archive, truth = official_archive(tmp_path / "made")
    body = archive.read_bytes()
    server = _Server({f"/~kriz/{ARCHIVE}": body})
    try:
        yield server, body, truth
    finally:
        server.close()


def test_the_official_location_and_checksum() -> None:
    assert CIFAR10_URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"


def test_download_verifies_stores_once_and_loads(
    served: tuple[_Server, bytes, tuple], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, body, truth = served
    cache = tmp_path / "cache"
    monkeypatch.setenv("NASX_CACHE", str(cache))
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    path = download(server.url(f"/~kriz/{ARCHIVE}"), md5, progress=True)
    assert path == cache / "downloads" / ARCHIVE
    assert path.read_bytes() == body
    assert [p.name for p in path.parent.iterdir()] == [ARCHIVE]  # no temporary file left
    assert len(server.requests) == 1
    # Already verified and in place: neither download() nor load("download") fetches again.
    assert download(server.url(f"/~kriz/{ARCHIVE}"), md5, progress=False) == path
    data = load("download", progress=False)
    assert len(server.requests) == 1
    assert_matches(data, truth)
    assert data.source.startswith(f"{ARCHIVE} (sha256 ") and data.digest == hashlib.sha256(body).hexdigest()


def test_checksum_mismatch_leaves_no_file(served: tuple[_Server, bytes, tuple], tmp_path: Path) -> None:
    server, body, _ = served
    wrong = "0" * 32
    got = hashlib.md5(body, usedforsecurity=False).hexdigest()
    with pytest.raises(DataError, match=f"md5 of .* is {got}, expected {wrong}; the file was not kept"):
        download(server.url(f"/~kriz/{ARCHIVE}"), wrong, cache_dir=tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []
    assert len(server.requests) == 1


def test_http_errors_and_unreachable_hosts_are_data_errors(served: tuple[_Server, bytes, tuple], tmp_path: Path) -> None:
    server, _, _ = served
    with pytest.raises(DataError, match=r"answered HTTP 404 .*pass its path to nasx\.data\.load\(\)"):
        download(server.url("/missing.tar.gz"), cache_dir=tmp_path / "cache", progress=False)
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError, match=rf"cannot reach http://127\.0\.0\.1:{port}/"):
        download(f"http://127.0.0.1:{port}/{ARCHIVE}", cache_dir=tmp_path / "cache", progress=False, timeout=5)
    with pytest.raises(DataError, match="url must be http:// or https://, got 'ftp://x/y'"):
        download("ftp://x/y", cache_dir=tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []
