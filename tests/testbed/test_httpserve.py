"""The test bed's HTTP server for binary caches (`nixlift_testbed.httpserve`), as a process, with
real HTTP clients: urllib, curl, and nix uploading to it and reading from it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nixlift_testbed.link import running

NIX = ["nix", "--extra-experimental-features", "nix-command"]
ENV = {**os.environ, "NIX_CONFIG": "substituters =\n"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(directory: Path, *, writable: bool) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "nixlift_testbed.httpserve", str(directory), "--port", str(port)]
    with running([*argv, *(["--writable"] if writable else [])], ("127.0.0.1", port)):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(URL, directory) of a writable server."""
    with serve(tmp_path / "cache", writable=True) as url:
        yield url, tmp_path / "cache"


def put(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_put_then_get(served: tuple[str, Path]) -> None:
    url, directory = served
    assert put(f"{url}/nar/a%20b.nar", b"payload") == 201
    assert (directory / "nar" / "a b.nar").read_bytes() == b"payload"
    with urllib.request.urlopen(f"{url}/nar/a%20b.nar", timeout=10) as answer:
        assert answer.read() == b"payload"
    assert put(f"{url}/nar/a%20b.nar", b"again") == 201  # replaced whole
    assert (directory / "nar" / "a b.nar").read_bytes() == b"again"
    assert [p.name for p in (directory / "nar").iterdir()] == ["a b.nar"]  # no temporary left


def test_paths_outside_the_directory_are_refused(served: tuple[str, Path]) -> None:
    url, directory = served
    assert put(f"{url}/../escaped", b"x") == 403
    assert put(f"{url}/nar/%2e%2e/%2e%2e/escaped", b"x") == 403
    assert put(f"{url}/", b"x") == 403
    assert not (directory.parent / "escaped").exists()


def test_read_only_unless_writable(tmp_path: Path) -> None:
    with serve(tmp_path, writable=False) as url:
        assert put(f"{url}/file", b"x") == 405
    assert not (tmp_path / "file").exists()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_large_upload_is_not_held_by_expect_100_continue(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, directory = served
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * 2**20))
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"]
    done = subprocess.run(
        [*curl, "-T", str(big), f"{url}/big"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    code, seconds = done.stdout.split()
    assert code == "201"
    assert float(seconds) < 0.9  # curl waits 1 s for a 100 Continue that never comes
    assert (directory / "big").read_bytes() == big.read_bytes()


@pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")
def test_nix_uploads_a_signed_path_and_reads_it_back(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, directory = served
    key = tmp_path / "key.sec"
    key.write_text(
        subprocess.run(
            [*NIX, "key", "generate-secret", "--key-name", "httpserve-test-1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    source = tmp_path / "payload"
    source.write_text(f"httpserve test {uuid.uuid4()}\n")
    path = subprocess.run(
        ["nix-store", "--add", str(source)], capture_output=True, text=True, check=True
    ).stdout.strip()
    store = f"{url}?compression=zstd&secret-key={key}"
    subprocess.run([*NIX, "copy", "--to", store, path], env=ENV, check=True, timeout=60)
    narinfo = directory / (Path(path).name.split("-")[0] + ".narinfo")
    assert "Sig: httpserve-test-1:" in narinfo.read_text()
    assert (directory / "nix-cache-info").is_file()
    info = subprocess.run(
        [*NIX, "path-info", "--store", url, path], env=ENV, capture_output=True, text=True
    )
    assert info.returncode == 0, info.stderr
    assert info.stdout.strip() == path
