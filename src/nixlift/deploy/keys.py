"""Keys and secrets: NixOps' and colmena's `deployment.keys`, morph's `deployment.secrets`.

What each machine declares (checked before anything happens), where each file's content comes
from (the key's text, a file here, a command run here), and the upload through the agent: the
content on stdin only, a file created with its owner and mode before the content lands, renamed
into place, left alone when neither content nor metadata changed, and removed once no longer
declared.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from nixlift import proc
from nixlift.agent.protocol import Agent
from nixlift.errors import CommandError, MissingProgramError, UsageError
from nixlift.model import Machine
from nixlift.transport.base import Host

PRE = "pre-activation"
POST = "post-activation"

#: what nixlift writes into a path it puts a file at: no blanks, quotes or control characters
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9@%+=:,./_-]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\$?")
_MODE = re.compile(r"0?[0-7]{3}")


class KeySourceError(CommandError):
    """A key's content could not be had on this machine (a missing file, a failing command)."""

    kind = "keys"


class KeyUploadError(CommandError):
    """Keys could not be written on a host, or a secret's action failed there."""

    kind = "keys"


@dataclass(frozen=True)
class Key:
    """One file nixlift puts on a host."""

    name: str
    #: "keys" (NixOps, colmena) or "secrets" (morph)
    kind: str
    path: str
    user: str
    group: str
    mode: str
    upload_at: str
    #: how its directory is made: "keys" (root:keys 0750), "make" (0755), "none" (must exist)
    dirs: str
    #: "text" | "keyFile" | "keyCommand" | "file"
    source: str
    file: str | None = None
    command: tuple[str, ...] = ()
    #: morph: run on the host (as the SSH user) after this secret was written
    action: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"deployment.{self.kind}.{self.name}"


@dataclass(frozen=True)
class Known:
    """What the host said, under its lock, of the keys nixlift wrote there before."""

    salt: bytes
    #: path → digest, for the files that are still there
    present: Mapping[str, str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Known:
        return cls(
            bytes.fromhex(str(data.get("salt") or "")),
            {str(k): str(v) for k, v in (data.get("present") or {}).items()},
        )


@dataclass(frozen=True)
class Uploaded:
    """What uploading a host's keys did, path by path."""

    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    #: written, but their user or group does not exist yet (the activation gives them owners)
    owner_pending: tuple[str, ...] = ()

    def __add__(self, other: Uploaded) -> Uploaded:
        return Uploaded(
            self.written + other.written,
            self.unchanged + other.unchanged,
            self.removed + other.removed,
            self.owner_pending + other.owner_pending,
        )

    def describe(self) -> str:
        parts = []
        if self.written:
            parts.append(f"{len(self.written)} written ({', '.join(self.written)})")
        if self.unchanged:
            parts.append(f"{len(self.unchanged)} unchanged")
        if self.removed:
            parts.append(f"{len(self.removed)} removed")
        return ", ".join(parts) or "none"


def _relative_to(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def declared(machine: Machine, base: Path) -> list[Key]:
    """The machine's keys and secrets, checked: a clear error before anything changes anywhere.
    Relative file names are taken from `base` (the network file's directory), as morph does."""
    raw = machine.deployment.raw
    found: list[Key] = []
    for name, k in sorted((raw.get("keys") or {}).items()):
        directory = PurePosixPath(str(k.get("destDir") or "/run/keys"))
        found.append(
            Key(
                name=name,
                kind="keys",
                path=str(directory / str(k.get("name") or name)),
                user=str(k.get("user") or "root"),
                group=str(k.get("group") or "root"),
                mode=str(k.get("permissions") or "0600"),
                upload_at=str(k.get("uploadAt") or PRE),
                dirs="keys",
                source=str(k.get("source") or "none"),
                file=_relative_to(k.get("keyFile"), base),
                command=tuple(str(w) for w in k.get("keyCommand") or ()),
            )
        )
    for name, s in sorted((raw.get("secrets") or {}).items()):
        owner = s.get("owner") or {}
        found.append(
            Key(
                name=name,
                kind="secrets",
                path=str(s.get("destination") or ""),
                user=str(owner.get("user") or "root"),
                group=str(owner.get("group") or "root"),
                mode=str(s.get("permissions") or "0400"),
                upload_at=str(s.get("uploadAt") or PRE),
                dirs="make" if s.get("mkDirs", True) else "none",
                source="file",
                file=_relative_to(s.get("source"), base),
                action=tuple(str(w) for w in s.get("action") or ()),
            )
        )
    _check(machine.name, found)
    return found


def _check(machine: str, keys: Sequence[Key]) -> None:
    seen: dict[str, Key] = {}
    for key in keys:
        where = f"{key.label} of machine '{machine}'"
        if key.source == "none":
            raise UsageError(
                f"{where} has neither text, keyFile nor keyCommand", hint="give exactly one of them"
            )
        if not _PLAIN_PATH.fullmatch(key.path) or "/../" in f"{key.path}/":
            raise UsageError(
                f"{where}: nixlift cannot write a file at {key.path!r}",
                hint="use an absolute path of letters, digits and . _ - + @ % = : , / "
                "(no blanks, quotes or ..)",
            )
        if not _MODE.fullmatch(key.mode):
            raise UsageError(
                f"{where}: {key.mode!r} is not a file mode",
                hint='give an octal mode such as "0600"',
            )
        for who in (key.user, key.group):
            if not _NAME.fullmatch(who):
                raise UsageError(f"{where}: {who!r} is not a user or group name")
        other = seen.get(key.path)
        if other is not None:
            raise UsageError(
                f"{other.label} and {key.label} of machine '{machine}' are both "
                f"written to {key.path}",
                hint="give each its own name or destDir",
            )
        seen[key.path] = key


async def content(key: Key, machine: Machine) -> bytes:
    """The key's content, read here (never from or into the Nix store)."""
    where = f"{key.label} of {machine.name}"
    if key.source == "text":
        secret = machine.key_texts.get(key.name)
        if secret is None:
            raise KeySourceError(
                f"{where}: its text was not evaluated",
                host=machine.name,
                hint="this is a bug in nixlift",
            )
        return secret.value
    if key.source in ("keyFile", "file"):
        assert key.file is not None
        try:
            return await asyncio.to_thread(Path(key.file).read_bytes)
        except OSError as e:
            raise KeySourceError(
                f"{where}: cannot read {key.file} ({e.strerror})",
                host=machine.name,
                hint="the file is read on this machine, relative paths from the network "
                "file's directory",
            ) from None
    try:
        done = await proc.run(
            key.command,
            binary_stdout=True,
            error=KeySourceError,
            what=f"the keyCommand of {where}",
            host=machine.name,
            hint="its output is the key; it runs on this machine",
        )
    except MissingProgramError as e:
        raise KeySourceError(
            f"the keyCommand of {where}: {e.message}",
            host=machine.name,
            hint="it runs on this machine, with its PATH",
        ) from None
    return done.data


def digest(salt: bytes, key: Key, data: bytes) -> str:
    """What the host remembers of a key: a keyed hash of its content and metadata."""
    meta = json.dumps([key.path, key.user, key.group, key.mode]).encode()
    return hmac.new(salt, meta + b"\0" + data, hashlib.sha256).hexdigest()


async def known(agent: Agent) -> Known:
    """Ask the host what it knows of the keys nixlift wrote (after a reboot emptied /run)."""
    return Known.from_json(await agent.call("keys_known", what="reading the host's keys"))


async def upload(
    agent: Agent,
    keys: Sequence[Key],
    contents: Mapping[str, bytes],
    known: Known,
    *,
    prune: Sequence[str] | None = None,
) -> Uploaded:
    """Write the keys whose content or metadata changed; with `prune` (every path the machine
    declares), remove what nixlift wrote before and is no longer declared."""
    fields: dict[str, object] = {"count": len(keys)}
    payload = bytearray()
    names: dict[str, str] = {}
    for i, key in enumerate(keys):
        data = contents[key.path]
        sign = digest(known.salt, key, data)
        write = known.present.get(key.path) != sign
        fields.update(
            {
                f"k{i}_path": key.path,
                f"k{i}_user": key.user,
                f"k{i}_group": key.group,
                f"k{i}_mode": key.mode,
                f"k{i}_size": len(data) if write else 0,
                f"k{i}_digest": sign,
                f"k{i}_write": write,
                f"k{i}_dirs": key.dirs,
            }
        )
        if write:
            payload += data
        names[key.path] = key.name
    if prune is not None:
        fields["prune"] = True
        fields["declared_count"] = len(prune)
        fields.update({f"declared_{j}": path for j, path in enumerate(prune)})
    answer = await agent.call(
        "keys", fields, payload=bytes(payload), what="uploading keys", error=KeyUploadError
    )
    return Uploaded(
        written=tuple(names.get(p, p) for p in answer.get("written") or ()),
        unchanged=tuple(names.get(p, p) for p in answer.get("unchanged") or ()),
        removed=tuple(answer.get("removed") or ()),
        owner_pending=tuple(names.get(p, p) for p in answer.get("owner_pending") or ()),
    )


async def run_actions(host: Host, keys: Sequence[Key], written: Sequence[str]) -> None:
    """morph's `action` of the secrets just written: each distinct command once, in the order
    declared, as the SSH user; a failing one fails the host."""
    done: set[tuple[str, ...]] = set()
    for key in keys:
        if not key.action or key.name not in written or key.action in done:
            continue
        done.add(key.action)
        result = await host.run(
            list(key.action),
            what=f"the action of {key.label}",
            check=False,
            stop_with_connection=True,
        )
        if result.returncode != 0:
            raise KeyUploadError(
                f"the action {' '.join(key.action)!r} after writing {key.label} failed on "
                f"{host.name} with exit status {result.returncode}",
                returncode=result.returncode,
                stderr_tail=result.stderr_tail(),
                host=host.name,
                hint="its output says why; the secret itself was written",
            )


async def send_all(
    agent: Agent, machine: Machine, keys: Sequence[Key], known_keys: Known | None
) -> Uploaded:
    """Every key and secret of the machine, both phases (`nixlift upload-keys`)."""
    contents = {k.path: await content(k, machine) for k in keys}
    uploaded = await upload(
        agent, keys, contents, known_keys or await known(agent), prune=[k.path for k in keys]
    )
    await run_actions(agent.host, keys, uploaded.written)
    return uploaded
