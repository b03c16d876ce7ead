"""The fleet's binary cache: what `--cache` and `network.cache` say, and `nixlift cache serve`."""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nixlift.cli.options import Invocation
from nixlift.cli.screen import interrupts
from nixlift.deploy.cache import CacheConfig
from nixlift.errors import UsageError
from nixlift.model import Network

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer


def config(inv: Invocation, network: Network) -> CacheConfig | None:
    """--cache, --cache-key and --cache-url, over network.cache (meta.cache) in the file."""
    given: Any = network.cache
    store = key = url = None
    base = network.files[0].resolve().parent if network.files else Path.cwd()
    if isinstance(given, str):
        store = given
    elif isinstance(given, dict):
        store, key, url = given.get("store"), given.get("secretKeyFile"), given.get("url")
        unknown = sorted(set(given) - {"store", "secretKeyFile", "url"})
        if unknown:
            raise UsageError(
                f"network.cache has {', '.join(unknown)}, which nixlift does not know",
                hint="network.cache = { store = URL; secretKeyFile = PATH; url = URL; }",
            )
    elif given is not None:
        raise UsageError("network.cache must be a store URL or { store; secretKeyFile; url; }")
    store = inv.cache.store or store
    key = inv.cache.key_file or key
    url = inv.cache.url or url
    if store is None:
        if key or url:
            raise UsageError("--cache-key and --cache-url need --cache STORE_URL")
        return None
    key_path = None if key is None else Path(key) if Path(key).is_absolute() else base / key
    return CacheConfig(str(store), key_path, url)


async def cmd_cache_serve(inv: Invocation) -> int:
    server = http_server(Path(inv.cache.serve_directory or "."), inv.cache.listen)
    stopped = asyncio.Event()
    with interrupts(stopped.set):
        serving = asyncio.ensure_future(asyncio.to_thread(server.serve_forever))
        await stopped.wait()  # until Ctrl-C or SIGTERM
        await asyncio.to_thread(server.shutdown)
        await serving
    server.server_close()
    print("nixlift: the cache is no longer served", file=sys.stderr)
    return 0


def http_server(directory: Path, listen: str) -> ThreadingHTTPServer:
    """An HTTP server for a file:// binary cache directory (stdlib; any web server would do)."""
    # imported here: http.server costs every other command ~40 ms of start-up
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class _Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    directory = directory.resolve()
    if not directory.is_dir():
        raise UsageError(
            f"{directory} is not a directory",
            hint="give the directory of the cache nixlift pushes to (--cache file://DIR); "
            "it may be empty until the first push",
        )
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise UsageError(f"--listen {listen!r} is not ADDRESS:PORT")
    handler = functools.partial(_Quiet, directory=str(directory))
    try:
        server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)  # noqa: S104
    except OSError as e:
        raise UsageError(f"cannot listen on {listen}: {e.strerror}") from None
    address, bound = server.server_address[:2]
    print(f"serving the binary cache {directory} on http://{address!s}:{bound}", file=sys.stderr)
    print(
        f"hosts fetch from it with: nixlift deploy --cache file://{directory} --cache-key KEY "
        f"--cache-url http://ADDRESS:{bound} …",
        file=sys.stderr,
        flush=True,
    )
    return server
