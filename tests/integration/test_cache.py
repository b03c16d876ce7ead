"""A binary cache for a fleet (--cache): each system pushed once, signed, fetched by the hosts
over HTTP from `nixlift cache serve`; a host that cannot reach it is copied to as usual."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import current_system, deploy_json, nixlift, write_network

pytestmark = pytest.mark.integration

TWO = """
  h1 = { ... }: { environment.etc."role".text = "one"; };
  h2 = { ... }: { environment.etc."role".text = "two"; };
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A cache directory, its signing key, and the URL `nixlift cache serve` serves it on."""
    cache, key = tmp_path / "cache", tmp_path / "cache.key"
    cache.mkdir()
    key.write_text(
        subprocess.run(
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "key",
                "generate-secret",
                "--key-name",
                "nixlift-test-1",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nixlift",
            "cache",
            "serve",
            str(cache),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, server.stderr
            time.sleep(0.05)
    try:
        yield cache, key, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0  # it stops cleanly on SIGTERM


def test_hosts_fetch_their_systems_from_the_cache(
    sandbox_factory: SandboxFactory, tmp_path: Path, served: tuple[Path, Path, str]
) -> None:
    cache, key, url = served
    sb = sandbox_factory(2)
    net = write_network(tmp_path / "net", sb, TWO)
    done, hosts = deploy_json(
        net, "--cache", f"file://{cache}", "--cache-key", key, "--cache-url", url
    )
    assert done.returncode == 0, done.stderr
    for name in ("h1", "h2"):
        assert hosts[name]["cache"] == "fetched", hosts[name]
        assert current_system(sb.host(name)) == hosts[name]["system"]
        # the system (signed) is in the cache, pushed from here once
        narinfo = cache / (Path(hosts[name]["system"]).name.split("-")[0] + ".narinfo")
        assert "Sig: nixlift-test-1:" in narinfo.read_text()
    # a host that cannot reach the cache gets the usual copy, and the result says so
    changed = write_network(tmp_path / "changed", sb, TWO.replace('"two"', '"two, again"'))
    done, hosts = deploy_json(
        changed,
        "--on",
        "h2",
        "--cache",
        f"file://{cache}",
        "--cache-key",
        key,
        "--cache-url",
        f"http://127.0.0.1:{free_port()}",
    )
    assert done.returncode == 0, done.stderr
    assert hosts["h2"]["cache"].startswith("copied: the host could not fetch from")
    assert current_system(sb.host("h2")) == hosts["h2"]["system"]
    assert "copying from here instead" in done.stderr


def test_the_cache_in_the_network_file(
    sandbox_factory: SandboxFactory, tmp_path: Path, served: tuple[Path, Path, str]
) -> None:
    cache, key, url = served
    sb = sandbox_factory(1)
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "cache.json").write_text(
        json.dumps({"store": f"file://{cache}", "url": url, "key": str(key)})
    )
    net = write_network(
        tmp_path / "net",
        sb,
        """
  network.cache = let c = builtins.fromJSON (builtins.readFile ./cache.json); in
    { store = c.store; url = c.url; secretKeyFile = c.key; };
  h1 = { ... }: { environment.etc."role".text = "from the file"; };
""",
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    assert hosts["h1"]["cache"] == "fetched"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cache", "file:///tmp/nowhere"], "needs a key to sign"),
        (["--cache-key", "/x"], "need --cache STORE_URL"),
        (
            ["--cache", "file:///tmp/nowhere", "--cache-key", "KEY"],
            "cannot read file:///tmp/nowhere",
        ),
        (
            [
                "--cache",
                "file:///tmp/nowhere",
                "--cache-key",
                "/nonexistent",
                "--cache-url",
                "http://x",
            ],
            "cannot read the cache key /nonexistent",
        ),
        (
            ["--cache", "file:///tmp/nowhere", "--cache-key", "NOTAKEY", "--cache-url", "http://x"],
            "is not a nix signing key",
        ),
    ],
)
def test_a_cache_that_cannot_work_is_refused_before_anything(
    tmp_path: Path, args: list[str], says: str
) -> None:
    net = write_network(tmp_path, None, "  h1 = { ... }: { };")
    subprocess.run(
        [
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "key",
            "generate-secret",
            "--key-name",
            "k",
        ],
        stdout=(tmp_path / "KEY").open("w"),
        check=True,
    )
    (tmp_path / "NOTAKEY").write_text("not a key\n")
    done = nixlift(
        "deploy", net, *[str(tmp_path / a) if a in ("KEY", "NOTAKEY") else a for a in args]
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "connecting" not in done.stderr
