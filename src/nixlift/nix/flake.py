"""Flake references: telling one from a network file, locking it the way `nix build` does, and
saying what a flake in a git repository cannot see.

A flake is locked (`nix flake metadata`, which writes a missing flake.lock and keeps the inputs
an existing one pins) before eval.nix reads it with `builtins.getFlake`: that builtin neither
writes lock files nor finds the git repository a directory belongs to, and the CLI does both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from nixlift import proc
from nixlift.errors import CommandError, EvalError, first_hint, nix_error_text
from nixlift.nix.argv import FLAKES, NixSettings

#: what makes an argument a flake reference rather than a file (as nix's own parser reads it)
SCHEMES = (
    "path:",
    "git+",
    "git:",
    "github:",
    "gitlab:",
    "sourcehut:",
    "hg+",
    "tarball+",
    "file+",
    "http://",
    "https://",
    "flake:",
)


@dataclass(frozen=True)
class FlakeRef:
    """`REF#ATTR` as given: REF a directory, `path:…`, `git+file:…`, `github:…`, …; ATTR the
    output (or the one nixosConfigurations machine) to read, None to let nixlift choose."""

    ref: str
    attr: str | None = None

    @classmethod
    def parse(cls, text: str) -> FlakeRef:
        ref, _, attr = text.partition("#")
        ref = ref or "."
        if ref.endswith("/flake.nix") or ref == "flake.nix":
            ref = str(Path(ref).parent)
        return cls(ref, attr or None)

    @property
    def text(self) -> str:
        return self.ref + (f"#{self.attr}" if self.attr else "")

    @property
    def is_path(self) -> bool:
        """A plain local path (`.`, `./fleet`, `/srv/fleet`, or `fleet` when that directory
        exists here); nix itself would take a bare `fleet` for a name in its flake registry."""
        if self.ref.startswith(SCHEMES) or ":" in self.ref.split("/", 1)[0]:
            return False
        return self.ref.startswith(("/", ".")) or Path(self.ref).is_dir()

    @property
    def for_nix(self) -> str:
        """The reference as nix must be given it: a local path made absolute."""
        return str(Path(self.ref).resolve()) if self.is_path else self.ref

    def local_dir(self) -> Path | None:
        """The directory on this machine the flake is in, when it is a local one."""
        if self.is_path:
            return Path(self.ref)
        for scheme in ("path:", "git+file://", "git+file:"):
            if self.ref.startswith(scheme):
                return Path(self.ref.removeprefix(scheme).split("?", 1)[0])
        return None

    def absolute(self, cwd: Path | None = None) -> FlakeRef:
        """The same reference with a relative local path made absolute (registry entries and
        locks outlive the current directory)."""
        base = cwd or Path.cwd()
        if self.is_path:
            return FlakeRef(str((base / self.ref).resolve()), self.attr)
        if self.ref.startswith("path:") and not self.ref.startswith("path:/"):
            rest = self.ref.removeprefix("path:")
            path, sep, query = rest.partition("?")
            return FlakeRef(f"path:{(base / path).resolve()}{sep}{query}", self.attr)
        return self


def looks_like_flake(argument: str) -> bool:
    """A NETWORK argument that is a flake: a directory holding flake.nix, a flake.nix file, or
    something with `#` or a flake URI scheme."""
    if "#" in argument or argument.startswith(SCHEMES):
        return True
    path = Path(argument)
    if path.name == "flake.nix":
        return True
    return path.is_dir() and (path / "flake.nix").is_file()


@dataclass(frozen=True)
class LockedFlake:
    """A flake reference resolved for evaluation: what builtins.getFlake reads."""

    ref: FlakeRef
    #: what builtins.getFlake reads (locked where nix can lock it)
    url: str
    #: the flake's directory here, when it is a local one
    local_dir: Path | None
    #: the flake's own description (flake.nix's `description`)
    description: str = ""

    @property
    def label(self) -> str:
        """How people name it: the directory, or the reference as given."""
        return str(self.local_dir) if self.local_dir is not None else self.ref.ref


def flake_argv(*args: str) -> list[str]:
    return ["nix", *FLAKES, *args]


def check_local(ref: FlakeRef) -> None:
    """A local flake's directory exists and holds flake.nix (said before nix is asked)."""
    local = ref.local_dir()
    if local is None:
        return
    if not local.is_dir():
        raise EvalError(
            f"flake directory {local} does not exist",
            hint="give the directory that holds flake.nix (or the flake.nix itself)",
        )
    if not (local / "flake.nix").is_file():
        raise EvalError(
            f"{local} has no flake.nix",
            hint="give the directory that holds flake.nix, or the network file itself",
        )


async def lock(ref: FlakeRef, settings: NixSettings) -> LockedFlake:
    """Lock the flake as `nix build` would (creating flake.lock when missing, keeping what it
    pins) and find where it really lives (a directory in a git repository is a git flake)."""
    check_local(ref)
    argv = flake_argv("flake", "metadata", "--json", ref.for_nix, *settings.option_args())
    try:
        done = await proc.run(argv, what=f"reading the flake {ref.ref}")
    except CommandError as e:
        raise await flake_error(ref, e.stderr_tail, f"reading the flake {ref.ref} failed") from None
    data = json.loads(done.stdout)
    url = str(data.get("url") or data.get("resolvedUrl") or ref.ref)
    local = ref.local_dir()
    return LockedFlake(
        ref, url, None if local is None else local.resolve(), str(data.get("description") or "")
    )


_SOURCE_PATH = re.compile(r"/nix/store/[0-9a-z]{32}-source(?:/([^'\"\s:]*))?")

_FLAKE_HINTS = (
    (
        re.compile(r"does not contain a 'flake.nix'|is not a flake|does not exist"),
        "give the directory that holds flake.nix (or the flake.nix itself)",
    ),
    (
        re.compile(r"requires lock file changes"),
        "lock it where it lives: nix flake lock (or give a local checkout)",
    ),
    (
        re.compile(r"NAR hash mismatch in input '([^']*)'"),
        "an input changed since flake.lock pinned it: nix flake lock --update-input NAME "
        "takes its current contents",
    ),
    (
        re.compile(r"cannot write modified lock file"),
        "the flake is not a local directory, so its lock cannot be written: lock it in a "
        "checkout (nix flake lock) and push flake.lock",
    ),
)


async def flake_error(ref: FlakeRef, stderr: str, what: str) -> EvalError:
    """An error about a flake that says what to do; first of all when the flake lives in a git
    repository and the path nix misses is a file git does not track."""
    text = nix_error_text(stderr)
    untracked = await untracked_files(ref, text)
    if untracked:
        names = " ".join(untracked)
        return EvalError(
            f"{what}: {', '.join(untracked)} "
            f"{'is' if len(untracked) == 1 else 'are'} not tracked by git, and a flake in a git "
            f"repository sees only the files git tracks\n{text}",
            hint=f"git add {names} (committing is not needed)",
        )
    hint = first_hint(_FLAKE_HINTS, text) or "run again with --show-trace for the whole trace"
    return EvalError(f"{what}:\n{text}", hint=hint)


async def untracked_files(ref: FlakeRef, error_text: str) -> list[str]:
    """Files of a local git flake that nix could not see because git does not track them and
    that the error is about, as paths relative to the current directory (for `git add`)."""
    local = ref.local_dir()
    if local is None or not local.is_dir() or ref.ref.startswith("path:"):
        return []
    if not re.search(r"No such file or directory|does not exist", error_text):
        return []
    try:
        top = await proc.run(
            ["git", "-C", str(local), "rev-parse", "--show-toplevel"], what="finding the git tree"
        )
        others = await proc.run(
            ["git", "-C", top.stdout.strip(), "ls-files", "--others", "--exclude-standard", "-z"],
            what="listing files git does not track",
        )
    except (CommandError, OSError):
        return []
    root = Path(top.stdout.strip())
    untracked = [p for p in others.stdout.split("\0") if p]
    missing = [m.group(1) or "" for m in _SOURCE_PATH.finditer(error_text)]
    found: list[str] = []
    for rel in missing:
        rel = rel.rstrip("/")
        for path in untracked:
            if (not rel or path == rel or path.startswith(rel + "/")) and path not in found:
                found.append(path)
    # the flake's own flake.nix first: without it nothing else matters
    flake_nix = str((local.resolve() / "flake.nix").relative_to(root))
    if flake_nix in found:
        found = [flake_nix]
    return [_relative(root / p) for p in found[:5]]


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
