"""The `-d NAME` registry: a small JSON file remembering which network files (and arguments) a
name stands for. A convenience only: everything it holds can be given on the command line."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

from nixlift.errors import RegistryError


@dataclass(frozen=True)
class Entry:
    """A name given with `nixlift create`: the files (and arguments) it stands for."""

    name: str
    files: tuple[str, ...]
    args: tuple[tuple[str, str], ...] = ()
    argstrs: tuple[tuple[str, str], ...] = ()
    include: tuple[str, ...] = ()
    created: str = ""
    #: a flake reference (`/abs/dir#attr`) instead of files
    flake: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["name"]
        if data["flake"] is None:
            del data["flake"]  # entries of network files stay as they were
        return data

    @classmethod
    def from_json(cls, name: str, data: object, *, path: Path) -> Entry:
        """Read one entry, refusing (with the file and the name) any shape `put` never writes."""

        def bad(what: str) -> RegistryError:
            return RegistryError(
                f"the registry {path}: deployment '{name}' {what}",
                hint=f"register it again with `nixlift create NETWORK.nix -d {name} --force`, "
                "or remove it from the file",
            )

        if not isinstance(data, dict):
            raise bad("is not a JSON object")
        flake = data.get("flake")
        if flake is not None and not isinstance(flake, str):
            raise bad("has a 'flake' that is not a string")
        files = data.get("files", [] if flake else None)
        if not _strings(files):
            raise bad("has no 'files' list of paths (nor a 'flake')")
        pairs: dict[str, tuple[tuple[str, str], ...]] = {}
        for key in ("args", "argstrs"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(
                isinstance(p, list) and len(p) == 2 and _strings(p) for p in value
            ):
                raise bad(f"has an '{key}' that is not a list of [name, value] pairs")
            pairs[key] = tuple((str(a), str(b)) for a, b in value)
        include = data.get("include", [])
        if not _strings(include):
            raise bad("has an 'include' that is not a list of names")
        return cls(
            name=name,
            files=tuple(files),
            args=pairs["args"],
            argstrs=pairs["argstrs"],
            include=tuple(include),
            created=str(data.get("created", "")),
            flake=flake,
        )

    @property
    def shown(self) -> str:
        """What the name stands for, for people."""
        return f"flake {self.flake}" if self.flake else " ".join(self.files)


def default_path() -> Path:
    explicit = os.environ.get("NIXLIFT_REGISTRY")
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "nixlift" / "deployments.json"


class Registry:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise RegistryError(f"cannot read the registry {self.path}: {e.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RegistryError(
                f"the registry {self.path} is not valid JSON (line {e.lineno})",
                hint="fix or delete the file; it only remembers names for network files",
            ) from None
        deployments = data.get("deployments", {}) if isinstance(data, dict) else None
        if not isinstance(deployments, dict):
            raise RegistryError(
                f"the registry {self.path} does not hold "
                '{"deployments": {NAME: {"files": [...]}, ...}}',
                hint="fix or delete the file; it only remembers names for network files",
            )
        return {str(k): v for k, v in deployments.items()}

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"deployments": entries}, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".deployments-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def entries(self) -> list[Entry]:
        return [Entry.from_json(k, v, path=self.path) for k, v in sorted(self._load().items())]

    def get(self, name: str) -> Entry:
        entries = self._load()
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise RegistryError(
                f"no deployment named '{name}' (registered: {known})",
                hint=f"register it with `nixlift create NETWORK.nix -d {name}`, "
                "or give the network file itself",
            )
        return Entry.from_json(name, entries[name], path=self.path)

    def put(self, entry: Entry, *, replace_existing: bool = True) -> Entry:
        entries = self._load()
        if entry.name in entries and not replace_existing:
            raise RegistryError(
                f"a deployment named '{entry.name}' is already registered "
                f"({_shown(entries[entry.name])})",
                hint=f"give --force to point '{entry.name}' at the new network, "
                "or choose another name",
            )
        stamped = replace(entry, created=entry.created or _now())
        entries[entry.name] = stamped.to_json()
        self._save(entries)
        return stamped

    def delete(self, name: str) -> None:
        entries = self._load()
        self.get(name)
        del entries[name]
        self._save(entries)


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _shown(data: object) -> str:
    if isinstance(data, dict):
        if isinstance(data.get("flake"), str):
            return f"flake {data['flake']}"
        if _strings(data.get("files")):
            return " ".join(data["files"])
    return "an unreadable entry"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
