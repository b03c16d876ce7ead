"""Evaluate network files into a Network with one nix-instantiate call."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nixlift import proc
from nixlift.errors import CommandError, EvalError, UsageError
from nixlift.model import DeploymentOptions, Machine, Network, Secret
from nixlift.nix import argv as nix_argv
from nixlift.nix.argv import NetworkArgs, NixSettings
from nixlift.selection import Selection


@dataclass(frozen=True)
class NetworkSource:
    """Where a network comes from: its files, its name, the arguments for its function."""

    files: tuple[Path, ...]
    deployment_name: str
    args: NetworkArgs = field(default_factory=NetworkArgs)


def check_files(files: tuple[Path, ...]) -> None:
    if not files:
        raise UsageError(
            "no network file given",
            hint="name one (nixlift deploy ./network.nix) or a registered deployment (-d NAME)",
        )
    for f in files:
        if not f.exists():
            raise EvalError(
                f"network file {f} does not exist",
                hint="check the path; registered deployments keep absolute paths (nixlift list)",
            )
        if f.is_dir() and not (f / "default.nix").exists():
            raise EvalError(
                f"network path {f} is a directory without default.nix",
                hint="name the network file itself",
            )


_ERROR_HINTS = (
    (
        re.compile(r"no nixpkgs to evaluate|was not found in the Nix search path"),
        "point nixlift at nixpkgs: network.nixpkgs in the file, --nixpkgs PATH, "
        "-I nixpkgs=PATH or NIX_PATH",
    ),
    (
        re.compile(r"The option .* does not exist"),
        "check the option's spelling; the README's table lists the deployment.* options",
    ),
    (re.compile(r"is not of type"), "give the option a value of the type shown"),
    (re.compile(r"syntax error"), "fix the Nix syntax at the file and line shown"),
    (
        re.compile(r"called without required argument"),
        "the network file is a function: give the argument with --arg NAME EXPR "
        "or --argstr NAME VALUE",
    ),
    (
        re.compile(r"nixpkgs\.hostPlatform nor the legacy option nixpkgs\.system"),
        "set nixpkgs.hostPlatform (or nixpkgs.localSystem) in the machine's configuration",
    ),
)


def _nix_error_text(stderr: str) -> str:
    """The part of nix's stderr a person needs: from the first `error:` on."""
    start = stderr.find("error:")
    text = stderr[start:] if start >= 0 else stderr
    return text.strip()


def _hint_for(text: str) -> str:
    for pattern, hint in _ERROR_HINTS:
        if pattern.search(text):
            return hint
    return "run again with --show-trace for the full evaluation trace"


async def evaluate(
    source: NetworkSource,
    selection: Selection,
    settings: NixSettings,
    *,
    machines: str = "full",
    key_texts: bool = False,
) -> Network:
    """Evaluate the network. `machines`: "full" instantiates each selected machine's toplevel,
    "deployment" reads only its deployment options, "none" only the network's names. With
    `key_texts`, the machines also carry their deployment.keys texts (to upload them)."""
    check_files(source.files)
    request = {
        "files": [str(f.resolve()) for f in source.files],
        "deploymentName": source.deployment_name,
        "machines": machines,
        "keyTexts": key_texts,
        **selection.to_request(),
    }
    argv = nix_argv.evaluate(request, source.args, settings)
    try:
        done = await proc.run(argv, what="evaluating the network")
    except CommandError as e:
        # keep nix's whole error: it names the file, line and option
        full = _nix_error_text(e.stderr_tail)
        files = ", ".join(str(f) for f in source.files)
        raise EvalError(f"evaluating {files} failed:\n{full}", hint=_hint_for(full)) from None
    return parse(json.loads(done.stdout), source, selection)


def parse(data: dict[str, Any], source: NetworkSource, selection: Selection) -> Network:
    """Turn eval.nix's JSON into a Network, refusing selections that match nothing."""
    names: list[str] = data["network"]["names"]
    if not names:
        raise EvalError(
            f"{', '.join(map(str, source.files))} defines no machines",
            hint="a network file is an attribute set of machines: { web = { … }; }",
        )
    if selection.include is not None:
        for pattern, matched in zip(selection.include, data["patternMatches"], strict=True):
            if not matched:
                raise UsageError(
                    f"'{pattern.text}' matches no machine of the network",
                    hint=f"machines: {', '.join(names)}",
                )
    selected: list[str] = data["selected"]
    if not selected:
        raise UsageError(
            "the selection (--on/--exclude) leaves no machine",
            hint=f"machines: {', '.join(names)}",
        )
    machines = tuple(
        Machine(
            name=m["name"],
            system=m.get("system", ""),
            host_platform=m.get("hostPlatform", ""),
            deployment=DeploymentOptions.from_json(m["deployment"]),
            drv_path=m.get("drvPath", ""),
            out_path=m.get("toplevel", ""),
            key_texts={k: Secret(str(v).encode()) for k, v in (m.get("keyTexts") or {}).items()},
        )
        for m in (data["machines"][n] for n in selected if n in data["machines"])
    )
    nix_config = tuple(
        (str(k), _nix_value(v)) for k, v in sorted(data["network"]["nixConfig"].items())
    )
    return Network(
        deployment_name=source.deployment_name,
        description=data["network"]["description"],
        files=source.files,
        machines=machines,
        all_names=tuple(names),
        nix_config=nix_config,
        local_system=str(data["network"].get("localSystem", "")),
        cache=data["network"].get("cache"),
    )


def _nix_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)
