"""Evaluate a network (files, or one output of a flake) into a Network with one nix-instantiate
call."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nixlift import proc
from nixlift.errors import (
    CommandError,
    EvalError,
    NixliftError,
    UsageError,
    first_hint,
    nix_error_text,
)
from nixlift.nix import argv as nix_argv
from nixlift.nix import flake as flakes
from nixlift.nix.argv import NetworkArgs, NixSettings
from nixlift.nix.flake import FlakeRef, LockedFlake
from nixlift.selection import Selection

if TYPE_CHECKING:
    # (imported where used: a deploy starts this evaluation before it imports the model)
    from nixlift.model import DeploymentOptions, Network

log = logging.getLogger("nixlift.evaluate")

#: told each selected machine's name and deployment options as soon as the evaluation has them,
#: before any system is evaluated (see evaluate's `announce`)
Announce = Callable[[str, "DeploymentOptions"], None]

#: how eval.nix's announcement starts on nix-instantiate's stderr (builtins.trace)
_ANNOUNCED = 'trace: {"nixliftHosts":'
#: how many lines of what nix says while evaluating are kept for people
MESSAGES = 40


@dataclass(frozen=True)
class NetworkSource:
    """Where a network comes from: its files or a flake, its name, the arguments for its
    function."""

    files: tuple[Path, ...]
    deployment_name: str
    args: NetworkArgs = field(default_factory=NetworkArgs)
    flake: FlakeRef | None = None
    #: ssh options (NIX_SSHOPTS) for machines that declare none: nixosConfigurations without
    #: nixlift's options module
    ssh_options: tuple[str, ...] = ()

    @property
    def local_files(self) -> tuple[Path, ...]:
        """Files on this machine the network is read from (a local flake: its flake.nix)."""
        if self.flake is None:
            return self.files
        local = self.flake.local_dir()
        return (local / "flake.nix",) if local is not None else ()

    @property
    def label(self) -> str:
        if self.flake is not None:
            return self.flake.text
        return ", ".join(str(f) for f in self.files)


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
        re.compile(r"has no `?hostname"),
        "give every deploy-rs node the address to reach it: deploy.nodes.NAME.hostname",
    ),
    (re.compile(r"__schema"), "expose colmena.lib.makeHive's result as colmenaHive"),
    (
        re.compile(r"has none of the outputs nixlift reads|has no output"),
        "name one with REF#OUTPUT (e.g. .#colmena, .#nixosConfigurations), or add one",
    ),
    (
        re.compile(r"hermetic mode|instantiated (nixpkgs )?package set|uninitialized nixpkgs"),
        "in a flake, give colmena's meta.nixpkgs as import nixpkgs { system = …; }",
    ),
    (
        re.compile(r"has no `nixpkgs` attribute"),
        "add `inherit nixpkgs;` to nixopsConfigurations.default",
    ),
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


async def evaluate(
    source: NetworkSource,
    selection: Selection,
    settings: NixSettings,
    *,
    machines: str = "full",
    key_texts: bool = False,
    announce: Announce | None = None,
    started: Callable[[], None] | None = None,
) -> Network:
    """Evaluate the network. `machines`: "full" instantiates each selected machine's toplevel,
    "deployment" reads only its deployment options, "none" only the network's names. With
    `key_texts`, the machines also carry their deployment.keys texts (to upload them).
    `announce` is told each selected machine's deployment options while the systems are still
    being evaluated (a deploy connects meanwhile); what it is told is checked again, with
    everything else, in the Network returned. `started` is called once nix evaluates: work
    that can go on meanwhile (it holds up what nix says until it returns)."""
    locked = await _locked(source, settings)
    request = _request(source, selection, locked, machines, key_texts, announce is not None)
    said: list[str] = []
    data = await _run(request, source, settings, announce, said, started)
    messages = said[:MESSAGES]
    if len(said) > MESSAGES:
        messages.append(f"({len(said) - MESSAGES} more lines not shown)")
    return replace(parse(data, source, selection, locked), messages=tuple(messages))


def _request(
    source: NetworkSource,
    selection: Selection,
    locked: LockedFlake | None,
    machines: str,
    key_texts: bool,
    announce: bool,
) -> dict[str, Any]:
    return {
        **_source_request(source, locked),
        "deploymentName": source.deployment_name,
        "machines": machines,
        "keyTexts": key_texts,
        "sshOptions": list(source.ssh_options),
        "announce": announce,
        **selection.to_request(),
    }


def start_early(
    source: NetworkSource,
    selection: Selection,
    settings: NixSettings,
    *,
    key_texts: bool = False,
    announce: bool = False,
) -> bool:
    """Start, before the event loop runs, the nix-instantiate that evaluate() with the same
    arguments (and `machines="full"`) runs: it takes it over (proc.start_early). Not for a
    flake (nix locks it first) nor files that are not there (evaluate says so)."""
    if source.flake is not None:
        return False
    try:
        check_files(source.files)
    except NixliftError:
        return False
    request = _request(source, selection, None, "full", key_texts, announce)
    return proc.start_early(_argv(request, source, settings))


def _argv(request: dict[str, Any], source: NetworkSource, settings: NixSettings) -> list[str]:
    """The evaluation's nix-instantiate: one place, as start_early's is taken over by _run's
    only if the two are the same."""
    return nix_argv.evaluate(request, source.args, settings, flakes=source.flake is not None)


def _stderr(announce: Announce | None, said: list[str]) -> proc.LineSink:
    """What reads nix-instantiate's stderr while it evaluates: the announcement (for
    `announce`), and into `said` the rest, what the configuration traces and nix warns of."""

    def sink(line: str) -> None:
        if not line.startswith(_ANNOUNCED):
            if line.strip():
                said.append(line)
            return
        if announce is None:
            return
        from nixlift.model import DeploymentOptions

        try:
            hosts = json.loads(line.removeprefix("trace: "))["nixliftHosts"]
            told = [(str(h["name"]), DeploymentOptions.from_json(h["deployment"])) for h in hosts]
        except (ValueError, KeyError, TypeError) as e:
            # the Network returned says what is wrong, if anything is
            log.debug("the evaluation's announcement is not usable: %s", e)
            return
        for name, deployment in told:
            announce(name, deployment)

    return sink


async def flake_outputs(ref: FlakeRef, settings: NixSettings) -> list[str]:
    """The outputs of a flake that nixlift reads (colmenaHive, …), in the order it prefers them."""
    source = NetworkSource((), "", flake=ref)
    locked = await _locked(source, settings)
    request = {**_source_request(source, locked), "probe": True}
    data = await _run(request, source, settings)
    return [str(o) for o in data["known"]]


async def machine_names(source: NetworkSource, settings: NixSettings) -> list[str]:
    """The names of the network's machines, and nothing else evaluated: what a shell's
    completion asks while a person presses TAB."""
    locked = await _locked(source, settings)
    data = await _run({**_source_request(source, locked), "namesOnly": True}, source, settings)
    return [str(n) for n in data["names"]]


async def _locked(source: NetworkSource, settings: NixSettings) -> LockedFlake | None:
    if source.flake is None:
        check_files(source.files)
        return None
    return await flakes.lock(source.flake, settings)


def _source_request(source: NetworkSource, locked: LockedFlake | None) -> dict[str, Any]:
    if locked is None:
        return {"files": [str(f.resolve()) for f in source.files], "flake": None}
    return {
        "files": [],
        "flake": {"url": locked.url, "label": locked.label, "attr": locked.ref.attr},
    }


async def _run(
    request: dict[str, Any],
    source: NetworkSource,
    settings: NixSettings,
    announce: Announce | None = None,
    said: list[str] | None = None,
    started: Callable[[], None] | None = None,
) -> dict[str, Any]:
    argv = _argv(request, source, settings)
    sink = _stderr(announce, said if said is not None else [])
    try:
        done = await proc.run(argv, what="evaluating the network", on_stderr=sink, started=started)
    except CommandError as e:
        e.stderr_tail = "\n".join(
            line for line in e.stderr_tail.splitlines() if not line.startswith(_ANNOUNCED)
        )
        # keep nix's whole error: it names the file, line and option
        what = f"evaluating {source.label} failed"
        if source.flake is not None:
            error = await flakes.flake_error(source.flake, e.stderr_tail, what)
            if "git add" in error.hint:
                raise error from None
        full = nix_error_text(e.stderr_tail)
        hint = first_hint(_ERROR_HINTS, full) or (
            "run again with --show-trace for the full evaluation trace"
        )
        raise EvalError(f"{what}:\n{full}", hint=hint) from None
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def parse(
    data: dict[str, Any],
    source: NetworkSource,
    selection: Selection,
    locked: LockedFlake | None = None,
) -> Network:
    """Turn eval.nix's JSON into a Network, refusing selections that match nothing."""
    from nixlift.model import DeploymentOptions, Machine, Network, Profile, Secret

    names: list[str] = data["network"]["names"]
    output = data["network"].get("output")
    label = f"{locked.label}#{output}" if locked is not None else source.label
    if not names:
        raise EvalError(
            f"{label} defines no machines",
            hint="a network file is an attribute set of machines: { web = { … }; }"
            if locked is None
            else "the output holds no machines (nodes, nixosConfigurations, …)",
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
            "the selection (--on/--exclude/--tagged/--skip/--limit) leaves no machine",
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
            profiles=tuple(Profile.from_json(p) for p in m.get("profiles") or ()),
            activation=str(m.get("activation") or "switch-to-configuration"),
        )
        for m in (data["machines"][n] for n in selected if n in data["machines"])
    )
    nix_config = tuple(
        (str(k), _nix_value(v)) for k, v in sorted(data["network"]["nixConfig"].items())
    )
    net = data["network"]
    return Network(
        deployment_name=source.deployment_name,
        # a flake output without a description of its own: the flake's
        description=net["description"] or (locked.description if locked else ""),
        files=source.local_files,
        machines=machines,
        all_names=tuple(names),
        nix_config=nix_config,
        local_system=str(net.get("localSystem", "")),
        source=label,
        output=output,
        notices=tuple(str(n) for n in net.get("notices") or ()),
        machines_file=net.get("machinesFile"),
        allow_apply_all=bool(net.get("allowApplyAll", True)),
        ordering=tuple(str(t) for t in net.get("ordering") or ()),
        cache=net.get("cache"),
    )


def _nix_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)
