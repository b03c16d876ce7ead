"""The `-d NAME` registry: a small JSON file remembering which network files (and arguments) a
name stands for. A convenience only: everything it holds can be given on the command line."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from nixlift.errors import RegistryError


@dataclass(frozen=True)
class Entry:
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
    def from_json(cls, name: str, data: dict[str, Any]) -> Entry:
        return cls(
            name=name,
            files=tuple(data["files"]),
            args=tuple((str(a), str(b)) for a, b in data.get("args", ())),
            argstrs=tuple((str(a), str(b)) for a, b in data.get("argstrs", ())),
            include=tuple(data.get("include", ())),
            created=str(data.get("created", "")),
            flake=None if data.get("flake") is None else str(data["flake"]),
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
        if not isinstance(data, dict):
            raise RegistryError(f"the registry {self.path} does not hold a JSON object")
        return {str(k): v for k, v in data.get("deployments", {}).items()}

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"deployments": entries}, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".deployments-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def entries(self) -> list[Entry]:
        return [Entry.from_json(k, v) for k, v in sorted(self._load().items())]

    def get(self, name: str) -> Entry:
        entries = self._load()
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise RegistryError(
                f"no deployment named '{name}' (registered: {known})",
                hint=f"register it with `nixlift create NETWORK.nix -d {name}`, "
                "or give the network file itself",
            )
        return Entry.from_json(name, entries[name])

    def put(self, entry: Entry) -> Entry:
        entries = self._load()
        stamped = replace(entry, created=entry.created or _now())
        entries[entry.name] = stamped.to_json()
        self._save(entries)
        return stamped

    def delete(self, name: str) -> None:
        entries = self._load()
        self.get(name)
        del entries[name]
        self._save(entries)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
