"""The typed side of nixlift's agent (agent.sh): its calls, their answers, their outcomes.

Every call runs `sh -c BOOT` as root on the host through Host.run. BOOT skips what sudo may have
left on stdin (up to a marker line), then runs the agent installed as `/run/nixlift/agent-HASH`.
When that file is missing (first use since the host booted, or a new nixlift), the first call of
a run does not start over: the marker line gave the request's length, so BOOT sets the request
aside, says it lacks the agent, and the script (gzip-compressed when the host has gzip) follows
on the same stdin; it is installed and given the request. The script travels at most once per
host per run, and not at all while the host still has it. Later calls (and calls that carry a
payload, such as key material, which BOOT does not set aside) that find it missing are made
again with the script in front. Requests go on stdin, never in argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nixlift import proc
from nixlift.errors import ActivationError, CommandError, NixliftError
from nixlift.model import HostState
from nixlift.transport.base import Host
from nixlift.transport.elevate import elevation_error, refusal

if TYPE_CHECKING:
    from nixlift.agent.answers import (
        Generation,
        HostClosure,
        ProfileOutcome,
        Survey,
        Switched,
    )

log = logging.getLogger("nixlift.agent")

DIRECTORY = "/run/nixlift"
MARKER = b"@nixlift-agent\n"
#: the bootstrap's "no agent installed" status
MISSING = 97
#: the lock's "someone else holds it" status
BUSY = 75

_BOOT = """umask 077
while IFS= read -r l; do case "$l" in @nixlift-agent|"@nixlift-agent "*) break ;; esac; done
a=/run/nixlift/agent-$1
n=${l#@nixlift-agent}
n=${n# }
recv() { dd bs="$1" count=1 iflag=fullblock of="$2" 2>/dev/null && [ "$(wc -c <"$2")" -eq "$1" ]; }
installed() {
  mv -f "$a.$$" "$a" || return 1
  for f in /run/nixlift/agent-*; do [ "$f" = "$a" ] || rm -f "$f"; done
}
if [ "$2" -gt 0 ] || { [ ! -f "$a" ] && [ -n "$n" ]; }; then
  mkdir -p /run/nixlift && chmod 0700 /run/nixlift || exit 1
fi
if [ "$2" -gt 0 ]; then
  recv "$2" "$a.$$" && installed || exit 1
elif [ ! -f "$a" ] && [ -n "$n" ]; then
  r=/run/nixlift/request.$$
  recv "$n" "$r" || exit 1
  if command -v gzip >/dev/null 2>&1; then z=gzip d="gzip -dc"; else z=cat d=cat; fi
  printf '{"missing": true, "send": "%s"}\\n' "$z"
  if IFS= read -r s && recv "$s" "$a.$$.in" && $d <"$a.$$.in" >"$a.$$" && installed; then
    rm -f "$a.$$.in"
    { cat "$r"; rm -f "$r"; exec cat; } | sh "$a"
    exit
  fi
  rm -f "$r" "$a.$$.in" "$a.$$"
  exit 97
elif [ ! -f "$a" ]; then
  echo '{"missing": true}'
  exit 97
fi
exec sh "$a"
"""

#: request fields the agent keeps and gives back as JSON, never reads itself
_RAW_FIELDS = frozenset({"info", "entry", "reason"})
_KEY = re.compile(r"[a-z0-9_]+")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')


@cache
def script() -> bytes:
    # (beside this file, as the package installs it: importlib.resources would import
    # zipfile and more, ~5 ms of every deploy here)
    return Path(__file__).with_name("agent.sh").read_bytes()


def _sent_script(how: str) -> bytes:
    """The script as BOOT asked for it after the request: its size on a line, then itself."""
    body = script()
    if how == "gzip":
        import gzip  # only on a host's first contact since it booted

        body = gzip.compress(body, 9, mtime=0)
    return b"%d\n" % len(body) + body


@cache
def version() -> str:
    return hashlib.sha256(script()).hexdigest()[:16]


def encode_request(action: str, fields: Mapping[str, object]) -> bytes:
    """The request as agent.sh reads it: one `"key": value` per line, values on one line."""
    lines = ["{"]
    for key, value in {"action": action, **fields}.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"agent request key {key!r}")
        if isinstance(value, str) and key not in _RAW_FIELDS and not _PLAIN.fullmatch(value):
            raise ValueError(f"agent request field {key} must be plain text: {value!r}")
        lines.append(f'"{key}": {json.dumps(value, ensure_ascii=False)},')
    lines[-1] = lines[-1].removesuffix(",")
    return ("\n".join([*lines, "}"]) + "\n").encode()


def decode_answer(stdout: str) -> dict[str, Any]:
    """The answer: the last line that holds a JSON object."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(data, dict):
                return data
            break
    raise AgentError("the host's agent gave no answer", stderr_tail=stdout[-2000:])


class AgentError(CommandError):
    """The agent could not do what it was asked."""

    kind = "agent"


class SessionGone(AgentError):
    """The held call that calls go through had ended before a call was sent through it."""


class Outcome(enum.StrEnum):
    """How an activation ended, as the host decided it."""

    ACTIVATED = "activated"  # switched; nobody waits for a confirmation
    CONFIRMED = "confirmed"  # switched and confirmed over a new connection
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    FAILED = "failed"  # switch-to-configuration failed and rollback is off
    UNDECIDED = "undecided"  # no decision within the wait
    NO_CANARY = "no-canary"  # the confirmation came after the host had decided


@dataclass(frozen=True)
class Decision:
    """What the host decided about an activation (see Outcome)."""

    outcome: Outcome
    reason: str | None = None
    #: what /run/current-system names after the decision
    running: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        reason = data.get("reason")
        return cls(
            Outcome(data.get("outcome", "undecided")),
            None if reason is None else str(reason),
            data.get("running"),
        )


@dataclass(frozen=True)
class Probe:
    """The host's state as the agent reads it, with what the deploy needs to know of it."""

    state: HostState
    #: whether the system we want to deploy is already in the host's store
    has_system: bool
    systemd: bool = False
    #: whether the host's Nix has a daemon program (`nix-daemon --stdio`: ssh-ng copies)
    daemon: bool = True

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Probe:
        return cls(
            HostState(data.get("current"), data.get("profile"), data.get("boot_id")),
            bool(data.get("valid")),
            bool(data.get("systemd")),
            bool(data.get("daemon", True)),
        )


@dataclass(frozen=True)
class Started:
    """switch-to-configuration's end (None: still running past the host's time limit)."""

    status: int | None
    systemd: bool
    log: str
    #: why nothing was touched: "not-nixos" (no switch-to-configuration), "no-deploy-rs-activate"
    #: (a deploy-rs system profile without it); "" when it ran
    refused: str = ""


#: what the held lock prints after the output of a call made through it
_END = "@nixlift-end "


def _json_line(text: str) -> dict[str, Any] | None:
    if text.startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(text)
            if isinstance(data, dict):
                return data
    return None


@dataclass
class Held:
    """A call that goes on: its first answer, then what is sent to it (a record, or a whole call
    made through it: see `call`), until `end` closes its stdin (or, failing that, stops it)."""

    host: str
    task: asyncio.Task[proc.Completed]
    first: dict[str, Any]
    feed: asyncio.Queue[bytes | None]
    #: its output lines after the first answer
    lines: asyncio.Queue[str]
    #: one exchange at a time
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: an exchange was cut short: what it still prints would be taken for the next one's
    broken: bool = False
    #: let go (see let_go): not waited for
    released: bool = False

    @property
    def usable(self) -> bool:
        return not self.broken and not self.task.done()

    async def _line(self) -> str:
        line = asyncio.ensure_future(self.lines.get())
        pending: set[asyncio.Future[Any]] = {line, self.task}
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not line.done():
            line.cancel()
            raise AgentError(f"the call on {self.host} has ended", host=self.host)
        return line.result()

    async def call(self, request: bytes, *, timeout: float | None) -> tuple[int, str]:
        """A call made through this one (the host's lock): its exit status and output."""
        async with self.turn:
            if not self.usable:
                raise SessionGone(f"the call on {self.host} has ended", host=self.host)
            out: list[str] = []
            try:
                async with asyncio.timeout(timeout):
                    await self.feed.put(b"call\n" + request)
                    while not (line := await self._line()).startswith(_END):
                        out.append(line + "\n")
            except BaseException:
                self.broken = True
                raise
            return int(line.removeprefix(_END).strip() or 1), "".join(out)

    async def last(self, line: str | None, *, timeout: float = 30) -> dict[str, Any] | None:
        """Send a last line (if any) and the end of stdin together, then wait for the call to
        end: one round trip for both. Returns the answer to that line."""
        async with self.turn:
            if not self.usable:
                raise AgentError(f"the call on {self.host} has ended", host=self.host)
            self.broken = True  # nothing more goes through it
            if line is not None:
                await self.feed.put(line.encode() + b"\n")
            await self.feed.put(None)
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
            except TimeoutError:
                await self.end(grace=0)
                raise AgentError(f"no answer from {self.host}", host=self.host) from None
            answers = []
            while not self.lines.empty():
                if (answer := _json_line(self.lines.get_nowait())) is not None:
                    answers.append(answer)
            if line is None:
                return None
            if not answers:
                raise AgentError(f"no answer from {self.host}", host=self.host)
            return answers[-1]

    async def send(self, line: str) -> None:
        """A line for the call to keep, answered by nothing (a push's pending record)."""
        async with self.turn:
            if not self.usable:
                raise SessionGone(f"the call on {self.host} has ended", host=self.host)
            await self.feed.put(line.encode() + b"\n")

    def let_go(self) -> None:
        """End the call's stdin and wait no more for it: it ends when the host has read that
        end, or with the connection, whichever comes first (`end` does not wait for it, nor
        stop it: a stopped ssh could keep the end of its stdin from the host until it was
        killed)."""
        self.broken = self.released = True
        if not self.task.done():
            self.feed.put_nowait(None)

    async def end(self, *, grace: float = 5) -> None:
        if self.released:
            return
        self.broken = True
        if not self.task.done():
            await self.feed.put(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.task), grace)
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class Agent:
    """The calls nixlift makes to its agent on one host."""

    def __init__(self, host: Host) -> None:
        self.host = host
        #: whether a call of this run found the agent on the host
        self.installed = False
        #: the held lock that the calls go through while it lasts (see Held.call)
        self.session: Held | None = None

    async def call(
        self,
        action: str,
        fields: Mapping[str, object] | None = None,
        *,
        what: str,
        timeout: float | None = None,
        fresh_connection: bool = False,
        error: type[CommandError] = AgentError,
        payload: bytes = b"",
    ) -> dict[str, Any]:
        """One call; `payload` follows the request on stdin (key material: never in argv)."""
        request = encode_request(action, fields or {}) + payload
        session = self.session
        if session is not None and session.usable and not fresh_connection:
            try:
                status, out = await session.call(request, timeout=timeout)
            except SessionGone:
                pass  # it ended before this call was sent: a session of its own, then
            else:
                done = proc.Completed((action,), status, out, "" if status == 0 else out)
                if status != 0:
                    raise self._failure(done, what, error)
                return decode_answer(out)
        done = await self._run(
            request,
            what=what,
            timeout=timeout,
            fresh_connection=fresh_connection,
            inline=not payload,
        )
        if done.returncode == MISSING and '"missing"' in done.stdout:
            done = await self._run(
                request, what=what, timeout=timeout, fresh_connection=fresh_connection, install=True
            )
        if done.returncode != 0:
            raise self._failure(done, what, error)
        return decode_answer(done.stdout)

    async def _run(
        self,
        request: bytes,
        *,
        what: str,
        timeout: float | None,
        fresh_connection: bool,
        install: bool = False,
        inline: bool = False,
        feed: asyncio.Queue[bytes | None] | None = None,
        on_stdout: proc.LineSink | None = None,
    ) -> proc.Completed:
        """One run of BOOT. `install`: the script goes in front of the request. `inline` (a
        request with nothing after it, while no call has found the agent yet): BOOT may ask for
        the script on this same stdin, which then stays open until the call ends (or, with
        `feed`, until None is put into it)."""
        body = script() if install else b""
        inline = inline and not install and not self.installed
        marker = b"@nixlift-agent %d\n" % len(request) if inline else MARKER
        stdin = self.host.elevation.stdin_prefix() + marker + body + request
        queue = feed
        sink = on_stdout
        if inline:
            queue = feed if feed is not None else asyncio.Queue()

            def sink(line: str, queue: asyncio.Queue[bytes | None] = queue) -> None:
                if line.startswith('{"missing"'):
                    with contextlib.suppress(json.JSONDecodeError):
                        asked = json.loads(line).get("send")
                        if asked in ("gzip", "cat"):
                            sent = _sent_script(asked)
                            log.debug(
                                "[%s] the agent is not on the host: sending it on this call "
                                "(%d bytes, %s)",
                                self.host.name,
                                len(sent),
                                asked,
                            )
                            queue.put_nowait(sent)
                            if feed is None:
                                queue.put_nowait(None)
                            return
                if on_stdout is not None:
                    on_stdout(line)

        done = await self.host.run(
            ["sh", "-c", _BOOT, "nixlift-agent", version(), str(len(body))],
            what=what,
            elevated=True,
            stdin=stdin,
            feed=queue,
            fresh_connection=fresh_connection,
            timeout=timeout,
            check=False,
            on_stdout=sink,
        )
        if done.returncode != MISSING:
            self.installed = True
        return done

    def _failure(self, done: proc.Completed, what: str, error: type[CommandError]) -> CommandError:
        name = self.host.name
        if refusal(done.stderr) is not None:
            return elevation_error(name, self.host.elevation, done, what)
        # the agent's own words when it answered with an error, else its exit status
        failed = f"failed with exit status {done.returncode}"
        with contextlib.suppress(AgentError):
            answer = decode_answer(done.stdout)
            if "error" in answer:
                failed = f"failed: {str(answer['error']).strip()}"
        return error(
            f"{what} on {name} {failed}",
            argv=done.argv,
            returncode=done.returncode,
            stderr_tail=done.stderr_tail(),
            host=name,
        )

    # --- typed calls -----------------------------------------------------------------------

    async def probe(self, system: str | None) -> Probe:
        return Probe.from_json(
            await self.call("probe", {"system": system or ""}, what="reading the host's state")
        )

    async def survey(self, system: str | None, *, want_keys: bool = False) -> Survey:
        """Read the host's state (and what it knows of its keys) without its lock, writing
        nothing."""
        from nixlift.agent import answers

        answer = await self.call(
            "survey",
            {"system": system or "", "want_keys": want_keys},
            what="reading the host's state",
        )
        keys, holder = answer.get("keys"), answer.get("holder")
        return answers.Survey(
            Probe.from_json(answer.get("probe") or {}),
            keys if isinstance(keys, dict) else None,
            holder if isinstance(holder, dict) else None,
        )

    async def closure(self, wanted: list[str], *, substitutes: bool) -> HostClosure:
        """The running system's closure with NAR sizes, and which of `wanted` the host lacks
        (with `substitutes`, what its own substituters would give of those)."""
        from nixlift.agent import answers

        answer = await self.call(
            "closure",
            {"count": len(wanted), "substitutes": substitutes},
            payload="".join(f"{p}\n" for p in wanted).encode(),
            what="reading the host's closure",
        )
        return answers.HostClosure(
            answer.get("current"),
            answers.parse_sizes(str(answer.get("closure") or "")),
            tuple(str(answer.get("missing") or "").split()),
            str(answer.get("dry_run") or ""),
        )

    async def start(
        self,
        directory: str,
        system: str,
        goal: str,
        *,
        set_profile: bool,
        auto_rollback: bool,
        magic: bool,
        confirm_timeout: int,
        activation_timeout: int,
        runner: str = "switch-to-configuration",
    ) -> Started:
        """Activate detached from this connection and wait for switch-to-configuration (with
        runner "deploy-rs": the system's own deploy-rs-activate)."""
        fields: dict[str, object] = {
            "dir": directory,
            "system": system,
            "goal": goal,
            "set_profile": set_profile,
            "auto_rollback": auto_rollback,
            "magic": magic,
            "confirm_timeout": confirm_timeout,
            "activation_timeout": activation_timeout,
        }
        if runner != "switch-to-configuration":
            fields["runner"] = runner
        answer = await self.call(
            "start",
            fields,
            what="activating",
            error=ActivationError,
            timeout=activation_timeout + 30,
        )
        if answer.get("refused"):
            return Started(None, False, "", refused=str(answer["refused"]))
        status = answer.get("status")
        return Started(
            None if status is None else int(status),
            bool(answer.get("systemd")),
            str(answer.get("log") or ""),
        )

    async def decision(self, directory: str, timeout: int) -> Decision:

        return Decision.from_json(
            await self.call(
                "decision",
                {"dir": directory, "timeout": timeout},
                what="waiting for the host's decision",
                error=ActivationError,
                timeout=timeout + 30,
            )
        )

    async def confirm(self, directory: str, timeout: int) -> Decision:
        """Magic rollback's proof: over a NEW login that can act as root, delete the canary."""

        return Decision.from_json(
            await self.call(
                "confirm",
                {"dir": directory},
                what="confirming over a new connection",
                fresh_connection=True,
                timeout=timeout + 30,
            )
        )

    async def abort(self, directory: str, reason: str) -> Decision:

        return Decision.from_json(
            await self.call(
                "abort",
                {"dir": directory, "reason": reason},
                what="aborting the activation",
                error=ActivationError,
                timeout=90,
            )
        )

    async def undo(self, directory: str, goal: str, set_profile: bool, reason: str) -> Decision:

        return Decision.from_json(
            await self.call(
                "undo",
                {"dir": directory, "goal": goal, "set_profile": set_profile, "reason": reason},
                what="rolling back",
                error=ActivationError,
            )
        )

    async def profile(
        self,
        *,
        name: str,
        path: str,
        user: str,
        profile_path: str | None,
        goal: str,
        auto_rollback: bool,
        activation_timeout: int,
    ) -> ProfileOutcome:
        """Install a deploy-rs profile as `user`'s and run its deploy-rs-activate as that user
        (dry-activate: only run it, with DRY_ACTIVATE=1)."""
        from nixlift.agent import answers

        answer = await self.call(
            "profile",
            {
                "profile_name": name,
                "path": path,
                "user": user,
                "profile_path": profile_path or "",
                "goal": goal,
                "auto_rollback": auto_rollback,
                "activation_timeout": activation_timeout,
            },
            what=f"activating the profile {name}",
            error=ActivationError,
            timeout=2 * activation_timeout + 60,
        )
        return answers.ProfileOutcome(
            str(answer.get("outcome") or "failed"),
            int(answer.get("status") or 0),
            str(answer.get("profile") or ""),
            str(answer.get("log") or ""),
        )

    async def activation_log(self, directory: str) -> str:
        answer = await self.call(
            "activation_log", {"dir": directory}, what="reading the activation's output"
        )
        return str(answer.get("log") or "")

    async def record(self, entry: Mapping[str, Any]) -> None:
        await self.call("record", {"entry": dict(entry)}, what="recording the deploy")

    async def history(self) -> list[dict[str, Any]]:
        answer = await self.call("history", what="reading the deploy history")
        records = []
        for line in str(answer.get("history") or "").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a full disk or a crash: the rest still counts
            if isinstance(record, dict):
                records.append(record)
        return records

    async def generations(self) -> list[Generation]:
        from nixlift.agent import answers

        return answers.parse_generations(await self.call("generations", what="listing generations"))

    async def switch_generation(self, link: str) -> Switched:
        from nixlift.agent import answers

        answer = await self.call(
            "switch_generation", {"link": link}, what=f"switching to {link}", error=ActivationError
        )
        return answers.Switched(
            answer.get("outcome") == "switched", answer.get("running"), str(answer.get("log") or "")
        )

    async def set_boot(self, system: str) -> Switched:
        from nixlift.agent import answers

        answer = await self.call(
            "set_boot",
            {"system": system},
            what="making the previous system the boot default",
            error=ActivationError,
        )
        return answers.Switched(bool(answer.get("ok")), None, str(answer.get("log") or ""))

    async def boot_once(self, new: str, old: str) -> str:
        answer = await self.call(
            "boot_once", {"new": new, "old": old}, what="setting a one-shot boot entry"
        )
        return str(answer.get("mechanism") or "none")

    async def boot_default(self, system: str) -> None:
        await self.call(
            "boot_default", {"system": system}, what="making the new system the boot default"
        )

    async def substitute(self, system: str, url: str, key: str) -> Switched:
        """Fetch the system from a binary cache the host trusts for this call (as root)."""
        from nixlift.agent import answers

        answer = await self.call(
            "substitute",
            {"system": system, "url": url, "key": key},
            what="fetching the system from the cache",
        )
        return answers.Switched(bool(answer.get("ok")), None, str(answer.get("log") or ""))

    async def reboot(self) -> None:
        await self.call("reboot", what="rebooting")

    async def hold(self, action: str, fields: Mapping[str, object], *, what: str) -> Held:
        """A call that goes on after its first answer (the lock, a store): see Held."""
        request = encode_request(action, fields)
        for install in (False, True):
            lines: asyncio.Queue[str] = asyncio.Queue()
            answered: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            feed: asyncio.Queue[bytes | None] = asyncio.Queue()

            def line(
                text: str,
                lines: asyncio.Queue[str] = lines,
                answered: asyncio.Future[dict[str, Any]] = answered,
            ) -> None:
                if answered.done():
                    lines.put_nowait(text)
                elif (answer := _json_line(text)) is not None:
                    answered.set_result(answer)

            task = asyncio.ensure_future(
                self._run(
                    request,
                    what=what,
                    timeout=None,
                    fresh_connection=False,
                    install=install,
                    inline=True,
                    feed=feed,
                    on_stdout=line,
                )
            )
            pending: set[asyncio.Future[Any]] = {answered, task}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if answered.done() and not answered.result().get("missing"):
                self.installed = True
                return Held(self.host.name, task, answered.result(), feed, lines)
            answered.cancel()
            done = await task
            if done.returncode != MISSING:
                raise self._failure(done, what, AgentError)
        raise NixliftError(
            f"the agent could not be installed on {self.host.name}", host=self.host.name
        )

    @contextlib.asynccontextmanager
    async def store_bridge(self) -> AsyncIterator[str]:
        """A nix-daemon run as root on the host for this user's copies (see serve_store);
        yields its socket's path."""
        held = await self.hold("serve_store", {}, what="starting a store for the copy")
        try:
            yield str(held.first["socket"])
        finally:
            await held.end()

    async def hold_lock(
        self,
        info: Mapping[str, Any],
        wait: int,
        system: str | None,
        *,
        want_keys: bool = False,
        exclusive: bool = True,
    ) -> Held:
        """Take the host's lock: the first answer is `open` (and `locked`) with the host's state
        (and with `want_keys` what it knows of the keys nixlift wrote), or `busy` with the
        holder. Not `exclusive`: the same session without the lock (a push)."""
        return await self.hold(
            "lock",
            {
                "info": dict(info),
                "wait": wait,
                "system": system or "",
                "want_keys": want_keys,
                "exclusive": exclusive,
            },
            what="locking the host" if exclusive else "reading the host's state",
        )
