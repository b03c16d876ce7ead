"""Pure builders of nix command lines. No process is started here; see nixlift.proc."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NIX_COMMAND = ("--extra-experimental-features", "nix-command")


@dataclass(frozen=True)
class NixSettings:
    """Settings the user gave for nix itself, passed on to every nix call that takes them."""

    include: tuple[str, ...] = ()  # -I entries, e.g. "nixpkgs=/path"
    options: tuple[tuple[str, str], ...] = ()  # --option NAME VALUE
    builders: str | None = None
    max_jobs: str | None = None
    show_trace: bool = False

    def option_args(self) -> list[str]:
        args: list[str] = []
        for name, value in self.options:
            args += ["--option", name, value]
        return args

    def build_args(self) -> list[str]:
        args = self.option_args()
        if self.builders is not None:
            args += ["--builders", self.builders]
        if self.max_jobs is not None:
            args += ["--max-jobs", self.max_jobs]
        return args

    def eval_args(self) -> list[str]:
        args: list[str] = []
        for entry in self.include:
            args += ["-I", entry]
        args += self.option_args()
        if self.show_trace:
            args.append("--show-trace")
        return args


@dataclass(frozen=True)
class NetworkArgs:
    """Arguments for a network file that is a function (NixOps' --arg / --argstr)."""

    exprs: tuple[tuple[str, str], ...] = ()  # --arg NAME EXPR (a Nix expression, the user's own)
    strings: tuple[tuple[str, str], ...] = ()  # --argstr NAME VALUE

    def args(self) -> list[str]:
        out: list[str] = []
        for name, expr in self.exprs:
            out += ["--arg", name, expr]
        for name, value in self.strings:
            out += ["--argstr", name, value]
        return out


def eval_nix_file() -> Path:
    """eval.nix, beside this module: nix reads it as a file (so the package is installed as
    files, never zipped), and importlib.resources would be ~5 ms more of every start."""
    return Path(__file__).with_name("eval.nix")


#: flakes are experimental on Nix 2.8: both features are needed for builtins.getFlake
FLAKES = ("--extra-experimental-features", "nix-command flakes")


def evaluate(
    request: dict[str, Any],
    network_args: NetworkArgs,
    settings: NixSettings,
    *,
    flakes: bool = False,
) -> list[str]:
    return [
        "nix-instantiate",
        *(FLAKES if flakes else ()),
        "--eval",
        "--strict",
        "--json",
        # without it, drvPath is computed but the .drv is not written, and the build can't find it
        "--read-write-mode",
        str(eval_nix_file()),
        "--argstr",
        "__nixliftRequest",
        json.dumps(request, sort_keys=True),
        *network_args.args(),
        *settings.eval_args(),
    ]


#: Hosts' systems share derivations, built by concurrent nix-store processes: the one that waits
#: for another's lock polls for it every build-poll-interval seconds (5 by default, which made a
#: 0.1 s build of two hosts take 5 s). The user's own --option comes later and wins.
_POLL = ("--option", "build-poll-interval", "1")


def realise(drv_path: str, gc_root: Path, settings: NixSettings) -> list[str]:
    return [
        "nix-store",
        "--realise",
        drv_path,
        "--add-root",
        str(gc_root),
        *_POLL,
        *settings.build_args(),
    ]


def realise_many(drv_paths: Sequence[str], gc_root: Path, settings: NixSettings) -> list[str]:
    """One nix-store for several derivations; GC roots gc_root, gc_root-2, … in that order."""
    return [
        "nix-store",
        "--realise",
        *drv_paths,
        "--add-root",
        str(gc_root),
        *_POLL,
        *settings.build_args(),
    ]


def path_info(paths: Sequence[str], settings: NixSettings) -> list[str]:
    """The closures of store paths here, with NAR sizes and references, as JSON."""
    return [
        "nix",
        *NIX_COMMAND,
        "path-info",
        "--json",
        "--recursive",
        *settings.option_args(),
        *paths,
    ]


def dry_run(drv_paths: Sequence[str], settings: NixSettings) -> list[str]:
    """What realising would build and fetch, said on stderr; nothing is built."""
    return ["nix-store", "--realise", "--dry-run", *drv_paths, *settings.build_args()]


def show_config(settings: NixSettings) -> list[str]:
    return ["nix", *NIX_COMMAND, "show-config", "--json", *settings.build_args()]


def copy_to(store_url: str, paths: Sequence[str], *, use_substitutes: bool) -> list[str]:
    """`nix copy` of closures to a store. The paths nixlift builds are not signed: the host
    store takes them because its client is trusted (root, or the daemon run as root)."""
    argv = ["nix", *NIX_COMMAND, "copy", "--no-check-sigs", "--to", store_url]
    if use_substitutes:
        argv.append("--substitute-on-destination")
    if paths and all(p.endswith(".drv") for p in paths):
        # the derivations themselves (buildOnTarget), not their outputs, which nix would build
        argv.append("--derivation")
    return [*argv, *paths]


def public_key() -> list[str]:
    """The public half of the secret key nix reads on stdin."""
    return ["nix", *NIX_COMMAND, "key", "convert-secret-to-public"]


def sign(key_file: Path, paths: Sequence[str]) -> list[str]:
    """Sign store paths and their closures in this machine's store."""
    return [
        "nix",
        *NIX_COMMAND,
        "store",
        "sign",
        "--key-file",
        str(key_file),
        "--recursive",
        *paths,
    ]
