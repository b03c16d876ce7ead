"""A directory over HTTP, for a binary cache beside sandbox hosts: GET and HEAD, and PUT with
`--writable` (what nix's `http://` binary cache store does to upload, `nix copy --to http://…`).

    python -m nixlift_testbed.httpserve DIRECTORY --bind ADDRESS --port PORT [--writable]

Python's `http.server` (threads, one per connection), speaking HTTP/1.1 so that an upload's
`Expect: 100-continue` is answered at once (curl, under nix, otherwise waits a second for it).
A PUT writes its file through a temporary name and a rename, so a reader never sees half a
file; paths that leave DIRECTORY are refused. Quiet but for errors. `nixlift_testbed.link.
serve_http` runs it on the hosts' side of a shaped link.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    writable = False

    def log_message(self, format: str, *args: object) -> None:
        pass

    def log_error(self, format: str, *args: object) -> None:
        if args and args[0] == 404:
            return  # nix asks for .narinfo files that are not there yet: routine
        sys.stderr.write(f"httpserve: {self.address_string()} {format % args}\n")

    def do_PUT(self) -> None:
        if not self.writable:
            self.send_error(405, "this server is read-only (start it with --writable)")
            return
        target = self._target()
        if target is None:
            self.send_error(403, "outside the served directory")
            return
        try:
            body = self._body()
        except ValueError as e:
            self.send_error(400, str(e))
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except OSError as e:
            Path(temporary).unlink(missing_ok=True)
            self.send_error(500, f"cannot write {target.name}: {e.strerror}")
            return
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _target(self) -> Path | None:
        root = Path(self.directory).resolve()
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        target = (root / relative).resolve()
        if target == root or root not in target.parents:
            return None
        return target

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ValueError("a PUT needs a Content-Length (or chunked encoding)")
        return self.rfile.read(int(length))


def serve(directory: Path, address: str, port: int, *, writable: bool) -> None:
    handler = partial(type("Served", (Handler,), {"writable": writable}), directory=str(directory))
    with ThreadingHTTPServer((address, port), handler) as server:
        server.daemon_threads = True
        server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nixlift_testbed.httpserve", description=__doc__
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--writable", action="store_true", help="accept PUT (uploads)")
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    try:
        serve(args.directory, args.bind, args.port, writable=args.writable)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
