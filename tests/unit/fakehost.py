"""A fake Host for the per-host sequence: it records every command and every agent call (the
request as the real agent would read it from stdin) and answers as a scripted host would."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from nixlift import proc
from nixlift.errors import CommandError, CopyError, SshError
from nixlift.events import Emit
from nixlift.nix.closure import NarSizes
from nixlift.transport.elevate import Elevation

OLD = "/nix/store/" + "o" * 32 + "-nixos-system-old"
NEW = "/nix/store/" + "n" * 32 + "-nixos-system-new"


_MARKER = re.compile(rb"^@nixlift-agent( [0-9]+)?\n", re.MULTILINE)


def after_marker(stdin: bytes) -> bytes:
    """What follows the bootstrap's marker line (the request, then any payload)."""
    found = _MARKER.search(stdin)
    assert found is not None, "no marker line"
    return stdin[found.end() :]


def decode_request(stdin: bytes) -> dict[str, Any]:
    """The request part of an agent call's stdin, read the way agent.sh reads it."""
    lines = after_marker(stdin).decode().splitlines()
    start = lines.index("{")
    request: dict[str, Any] = {}
    for line in lines[start + 1 :]:
        if line == "}":
            return request
        key, _, value = line.removesuffix(",").partition(": ")
        request[json.loads(key)] = json.loads(value)
    raise AssertionError("the request has no end")


@dataclass
class Script:
    """How the fake host behaves."""

    current: str | None = OLD
    profile: str | None = OLD
    has_system: bool = False
    #: switch-to-configuration's status; None: still running at the time limit
    status: int | None = 0
    refused: bool = False
    #: the new login of magic rollback fails (the system locked SSH out)
    locked_out: bool = False
    #: what the host runs after a rollback
    running_after_rollback: str | None = OLD
    rollback_outcome: str = "rolled-back"
    #: exit status of health check commands
    check_status: int = 0
    #: the host never comes back from a reboot
    never_back: bool = False
    systemd: bool = False
    #: the deploys the host's history holds
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the system has deploy-rs-activate (a deploy-rs system profile)
    deploy_rs_activate: bool = True
    #: each deploy-rs profile's deploy-rs-activate status, by name (0 when not given)
    profile_status: dict[str, int] = field(default_factory=dict)
    #: the running system's closure, with NAR sizes (the agent's `closure`)
    closure: dict[str, int] = field(default_factory=dict)
    #: the store paths the host has besides its running closure
    store: set[str] = field(default_factory=set)
    #: how long connecting takes
    connect_seconds: float = 0
    #: how many copies fail (each with an error that is not a cut connection, or with
    #: `copy_cut`, as one whose connection was cut)
    copy_fails: int = 0
    copy_cut: bool = False
    #: the NAR bytes a copy says it sent
    copy_bytes: int | None = None
    #: who holds the host's lock now (a deploy under way)
    holder: dict[str, Any] | None = None
    #: what the host knows of its keys (the agent's keys_known)
    keys: dict[str, Any] = field(default_factory=lambda: {"salt": None, "present": {}})


@dataclass
class FakeHost:
    name: str = "h1"
    script: Script = field(default_factory=Script)
    elevation: Elevation = field(default_factory=Elevation)
    is_local: bool = False
    #: ("agent", action, fields) / ("run", argv) / ("copy", paths) / ("open",) / ("close",)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    boot_id: str = "boot-1"
    up: bool = True
    #: the boot loader's entry for the next boot only
    oneshot: str | None = None
    #: the lock's record came with the end of its stdin
    record_ends_lock = False
    #: the agent calls made through the held lock (no session of their own)
    held_calls: list[str] = field(default_factory=list)
    #: what followed the last agent request on stdin
    payload: bytes | None = None

    @property
    def destination(self) -> str:
        return f"root@{self.name}"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self.calls.append(("open",))
        await asyncio.sleep(self.script.connect_seconds)
        if not self.up:
            raise SshError(f"cannot reach {self.name}", host=self.name, hint="is it up?")

    async def close(self) -> None:
        self.calls.append(("close",))

    async def reopen(self, connect_timeout: int) -> None:
        await self.close()
        await self.open()

    def actions(self) -> list[str]:
        """The agent calls and other commands, in order, as short words."""
        words = []
        for call in self.calls:
            if call[0] == "agent":
                words.append(call[1] + (" (new login)" if call[3] else ""))
            elif call[0] in ("run", "copy"):
                words.append(call[0])
        return words

    def agent_calls(self, action: str) -> list[dict[str, Any]]:
        return [c[2] for c in self.calls if c[0] == "agent" and c[1] == action]

    async def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        elevated: bool = False,
        stdin: bytes | None = None,
        keep_stdin_open: bool = False,
        stop_with_connection: bool = False,
        fresh_connection: bool = False,
        timeout: float | None = None,
        check: bool = True,
        error: type[CommandError] = CommandError,
        on_stdout: proc.LineSink | None = None,
        on_stderr: proc.LineSink | None = None,
        feed: asyncio.Queue[bytes | None] | None = None,
    ) -> proc.Completed:
        if list(argv[:2]) == ["sh", "-c"] and argv[3] == "nixlift-agent":
            assert elevated, "the agent always runs as root"
            assert stdin is not None
            request = decode_request(stdin)
            self.payload = after_marker(stdin).partition(b"\n}\n")[2]
            action = request.pop("action")
            self.calls.append(("agent", action, request, fresh_connection))
            if fresh_connection and self.script.locked_out:
                raise SshError(
                    f"cannot reach {self.name}", host=self.name, hint="authentication failed"
                )
            answer = self._answer(action, request)
            line = json.dumps(answer)
            if action == "lock":
                # held: it takes the deploy's record on its stdin, until that ends
                assert on_stdout is not None and feed is not None
                on_stdout(line)
                pending: list[str] = []
                try:
                    await self._held_lock(feed, on_stdout, pending)
                finally:
                    # the end of its stdin, or of its connection (let go): a push's record sent
                    # ahead is written if its system got into the store
                    if pending and pending[0].split(" ", 1)[0] in self.script.store:
                        entry = json.loads(pending[0].split(" ", 1)[1])
                        self.calls.append(("agent", "record", {"entry": entry, "ahead": 1}, False))
            return proc.Completed(tuple(argv), 0, line + "\n", "")
        self.calls.append(("run", list(argv)))
        if "nixlift-systemd" in argv:
            return proc.Completed(tuple(argv), 0, "no-systemd\n", "")
        status = self.script.check_status
        return proc.Completed(tuple(argv), status, "", "" if status == 0 else "check failed\n")

    async def _held_lock(
        self, feed: asyncio.Queue[bytes | None], on_stdout: proc.LineSink, pending: list[str]
    ) -> None:
        """The held lock's session: calls made through it, a record, a push's pending record."""
        while (sent := await feed.get()) is not None:
            if sent.startswith(b"call\n"):
                # a call made through the lock: its output, then its end
                request = decode_request(b"@nixlift-agent\n" + sent[5:])
                self.payload = sent[5:].partition(b"\n}\n")[2]
                action = request.pop("action")
                self.calls.append(("agent", action, request, False))
                self.held_calls.append(action)
                on_stdout(json.dumps(self._answer(action, request)))
                on_stdout("@nixlift-end 0")
                continue
            words = sent.decode().rstrip("\n")
            if words.startswith("pending "):
                pending[:] = [words[8:]]
                continue
            assert words.startswith("record ")
            pending.clear()
            self.calls.append(("agent", "record", {"entry": json.loads(words[7:])}, False))
            # the end of stdin already follows it: one round trip for both
            self.record_ends_lock = not feed.empty()
            on_stdout(json.dumps({"recorded": True}))

    async def copy_to(
        self,
        paths: Sequence[str],
        *,
        use_substitutes: bool,
        emit: Emit,
        legacy: bool = False,
        remote_store: str | None = None,
        sizes: NarSizes | None = None,
    ) -> int | None:
        self.calls.append(("copy", list(paths)))
        if self.script.copy_fails > 0:
            self.script.copy_fails -= 1
            cut = (
                "client_loop: send disconnect: Connection reset by peer"
                if self.script.copy_cut
                else ""
            )
            raise CopyError(f"copying to {self.name} failed", host=self.name, stderr_tail=cut)
        self.script.store.update(paths)
        return self.script.copy_bytes

    def nix_sshopts(self) -> str:
        return ""

    def store_url(self, *, legacy: bool = False, remote_store: str | None = None) -> str:
        return f"ssh-ng://{self.destination}"

    def _probe(self) -> dict[str, Any]:
        s = self.script
        return {
            "current": s.current,
            "profile": s.profile,
            "boot_id": self.boot_id,
            "valid": s.has_system,
            "systemd": s.systemd,
        }

    def _decision(self, outcome: str, reason: str | None = None) -> dict[str, Any]:
        s = self.script
        if outcome == "rolled-back":
            outcome = s.rollback_outcome
            s.current = s.running_after_rollback
        return {"outcome": outcome, "reason": reason, "running": s.current}

    def _answer(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        s = self.script
        if action == "probe":
            return self._probe()
        if action == "lock":
            return {"locked": request["exclusive"], "open": True, "probe": self._probe()}
        if action == "survey":
            keys = s.keys if request["want_keys"] else None
            return {"probe": self._probe(), "keys": keys, "holder": s.holder}
        if action == "closure":
            assert self.payload is not None
            wanted = self.payload.decode().split()
            assert len(wanted) == request["count"]
            have = set(s.closure) | s.store
            return {
                "current": s.current,
                "closure": "".join(f"{size} {path}\n" for path, size in s.closure.items()),
                "missing": "".join(f"{p}\n" for p in wanted if p not in have),
                "dry_run": "",
            }
        if action == "start":
            if s.refused:
                return {"refused": "not-nixos", "system": request["system"]}
            if request.get("runner") == "deploy-rs" and not s.deploy_rs_activate:
                return {"refused": "no-deploy-rs-activate", "system": request["system"]}
            if s.status in (0, 100) and request["goal"] in ("switch", "test"):
                s.current = request["system"]
            if request["set_profile"]:
                s.profile = request["system"]
            return {"status": s.status, "systemd": s.systemd, "log": "activating...\n"}
        if action == "decision":
            if s.status in (0, 100) and not s.locked_out:
                return self._decision("confirmed")
            return self._decision("rolled-back", "it failed")
        if action == "confirm":
            return self._decision("confirmed")
        if action in ("abort", "undo"):
            return self._decision("rolled-back", request["reason"])
        if action == "activation_log":
            return {"log": "activating...\nrolling back\n"}
        if action == "boot_once":
            self.oneshot = request["new"]
            s.profile = request["old"]
            return {"mechanism": "systemd-boot"}
        if action == "boot_default":
            s.profile = request["system"]
            return {}
        if action == "reboot":
            self.boot_id += "+"
            s.current, self.oneshot = self.oneshot or s.profile, None
            if s.never_back:
                self.up = False
            return {}
        if action == "history":
            return {"history": "".join(json.dumps(r) + "\n" for r in s.history)}
        if action == "set_boot":
            s.profile = request["system"]
            return {"ok": True, "log": ""}
        if action == "profile":
            status = s.profile_status.get(request["profile_name"], 0)
            where = request["profile_path"] or (
                f"/nix/var/nix/profiles/per-user/{request['user']}/{request['profile_name']}"
            )
            outcome = "activated" if status == 0 else "rolled-back"
            if status and not request["auto_rollback"]:
                outcome = "failed"
            return {"outcome": outcome, "status": status, "profile": where, "log": "ran\n"}
        return {}
