"""The command line as data: argparse's Namespace is read here, once, into frozen values; no
Namespace travels further."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from nixlift.cli.parser import GOAL_FLAGS, GOALS, did_you_mean
from nixlift.errors import UsageError
from nixlift.goal import Goal


@dataclass(frozen=True)
class Output:
    """How much to say, and where: -v, -q, --debug, --json, colours, the progress style."""

    verbose: bool = False
    #: -q: no progress, only errors (and the summary when a host failed)
    quiet: bool = False
    debug: bool = False
    json: bool = False
    #: "auto" | "live" | "plain"
    progress: str = "auto"
    log_dir: Path | None = None
    #: "auto" | "always" | "never": --color, else NO_COLOR, else auto
    color: str = "auto"


@dataclass(frozen=True)
class NetworkChoice:
    """Which network, with which arguments and nix settings."""

    files: tuple[str, ...] = ()
    #: --flake REF[#ATTR]
    flake: str | None = None
    deployment: str | None = None
    args: tuple[tuple[str, str], ...] = ()
    argstrs: tuple[tuple[str, str], ...] = ()
    search_path: tuple[str, ...] = ()
    nixpkgs: str | None = None
    show_trace: bool = False
    nix_options: tuple[tuple[str, str], ...] = ()
    builders: str | None = None
    max_jobs: str | None = None
    keep_result: bool = False
    #: --on / --include, and --exclude: names, globs, @tags
    on: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: morph's --tagged, --skip, --every, --limit
    tagged: tuple[str, ...] = ()
    skip: int = 0
    every: int = 1
    limit: int = 0


@dataclass(frozen=True)
class FleetChoice:
    """How many hosts at once, and what a failure does to the rest."""

    connect_timeout: int = 10
    parallel: int = 10
    build_parallel: int | None = None
    fail_fast: bool = False
    max_failures: str | None = None
    skip_unreachable: bool = False
    lock_wait: int = 0
    #: --compress: ssh's compression, for slow links
    compress: bool = False


@dataclass(frozen=True)
class CacheChoice:
    """--cache, --cache-key, --cache-url; and `cache serve`'s directory and address."""

    store: str | None = None
    key_file: str | None = None
    url: str | None = None
    serve_directory: str | None = None
    listen: str = "0.0.0.0:8080"


@dataclass(frozen=True)
class Safety:
    """The safety options given on the command line (each machine's own settings still apply)."""

    always_activate: bool = False
    auto_rollback: bool = True
    magic_rollback: bool = True
    health_checks: bool = True
    reboot: bool = False
    allow_reboot: bool = False
    reboot_timeout: int = 300


@dataclass(frozen=True)
class Invocation:
    """One run of the command line."""

    command: str
    output: Output = field(default_factory=Output)
    network: NetworkChoice = field(default_factory=NetworkChoice)
    fleet: FleetChoice = field(default_factory=FleetChoice)
    safety: Safety = field(default_factory=Safety)
    cache: CacheChoice = field(default_factory=CacheChoice)
    goal: Goal = Goal.SWITCH
    #: exec / ssh: the words after `--`
    remote_command: tuple[str, ...] = ()
    #: ssh: the machine; apply-local: --node
    machine: str | None = None
    #: rollback --to
    to: int | None = None
    #: history --last
    last: int = 0
    #: check --pre-deploy
    pre_deploy: bool = False
    #: --no-keys turns the upload of keys and secrets off
    upload_keys: bool = True
    #: --ask-sudo-password
    ask_sudo_password: bool = False
    #: --build-host [USER@]HOST
    build_host: str | None = None
    #: plan --no-build: nix's dry run instead of a build
    no_build: bool = False
    #: plan --dry-activate: the hosts' own dry-activate too
    dry_activate_plan: bool = False
    #: deploy --confirm: show the plan and ask first; --yes: do not ask
    confirm: bool = False
    yes: bool = False
    #: deploy --dry-run (NixOps'): the plan, and stop
    dry_run: bool = False
    #: import-nixops: the state file, the deployments to import, whether to replace names
    state_file: Path | None = None
    deployments: tuple[str, ...] = ()
    replace: bool = False
    #: completions: bash | zsh | fish
    shell: str | None = None


def _pairs(values: list[list[str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, b in values or [])


#: the commands that take a GOAL
GOAL_COMMANDS = ("deploy", "apply-local", "plan")


def _goal(command: str, files: list[str], flags: list[str]) -> Goal:
    """The goal, taken out of `files`: a word that is a goal's name is the goal wherever it
    stands, whatever the current directory holds (a file named `test` is given as ./test), so
    the same line means the same everywhere. NixOps' --build-only, --test, … say the same;
    two different goals are an error naming both."""
    if command not in GOAL_COMMANDS:
        for word in files:
            if word in GOALS and not Path(word).exists():
                raise UsageError(
                    f"`nixlift {command}` takes no goal ('{word}')",
                    hint="goals are for nixlift deploy, apply-local and plan; a network file of "
                    f"that name is given as a path (./{word})",
                )
        return Goal.BUILD if command == "build" else Goal.SWITCH
    said: dict[str, Goal] = {}
    for word in list(files):
        if word in GOALS:
            files.remove(word)
            said.setdefault(f"'{word}'", Goal(word))
        elif _misspelt_goal(word):
            close = did_you_mean(word, GOALS)
            goals = ", ".join(GOALS)
            raise UsageError(
                f"unknown goal '{word}'{close or f' (goals: {goals})'}",
                hint=f"the goals: {goals}"
                if close
                else "machines are chosen with --on NAME, a registered name with -d NAME; a "
                f"network file is given by its path (./{word}) and must exist",
            )
    for flag in dict.fromkeys(flags):
        said.setdefault(flag, GOAL_FLAGS[flag])
    chosen = set(said.values())
    if len(chosen) > 1:
        raise UsageError(
            f"conflicting goals: {' and '.join(said)}",
            hint=f"give one goal: {', '.join(GOALS)}",
        )
    return chosen.pop() if chosen else Goal.SWITCH


def _misspelt_goal(word: str) -> bool:
    """A bare word (no path, no flake reference) that names nothing here: not a network."""
    bare = not any(c in word for c in "/.#:~")
    return bare and not Path(word).exists()


def _color(given: str | None) -> str:
    """--color wins; else NO_COLOR (https://no-color.org) set to anything means never."""
    if given:
        return given
    return "never" if os.environ.get("NO_COLOR") else "auto"


#: argparse gives the alias a command was called by
ALIASES = {"send-keys": "upload-keys"}
#: commands with a subcommand of their own: `cache serve` is "cache-serve"


def from_namespace(ns: argparse.Namespace, remote_command: list[str]) -> Invocation:
    got = vars(ns)
    ns.command = ALIASES.get(ns.command, ns.command)
    if ns.command == "cache":
        ns.command = f"cache-{ns.cache_command}"
    files = list(got.get("network") or [])
    goal = _goal(ns.command, files, list(got.get("goal_flags") or ()))
    if got.get("verbose") and got.get("quiet"):
        raise UsageError("-v (--verbose) and -q (--quiet) both given", hint="give one of them")
    log_dir = got.get("log_dir")
    return Invocation(
        command=ns.command,
        output=Output(
            verbose=bool(got.get("verbose")),
            quiet=bool(got.get("quiet")),
            debug=bool(got.get("debug")),
            json=bool(got.get("json")),
            progress=str(got.get("progress") or "auto"),
            log_dir=Path(log_dir) if log_dir else None,
            color=_color(got.get("color")),
        ),
        network=NetworkChoice(
            files=tuple(files),
            flake=got.get("flake"),
            deployment=got.get("deployment"),
            args=_pairs(got.get("arg")),
            argstrs=_pairs(got.get("argstr")),
            search_path=tuple(got.get("search_path") or ()),
            nixpkgs=got.get("nixpkgs"),
            show_trace=bool(got.get("show_trace")),
            nix_options=_pairs(got.get("option")),
            builders=got.get("builders"),
            max_jobs=got.get("max_jobs"),
            keep_result=bool(got.get("keep_result")),
            on=(*(got.get("on") or ()), *(got.get("include_machines") or ())),
            exclude=tuple(got.get("exclude") or ()),
            tagged=tuple(got.get("tagged") or ()),
            skip=int(got.get("skip") or 0),
            every=int(got.get("every") or 1),
            limit=int(got.get("limit") or 0),
        ),
        fleet=FleetChoice(
            connect_timeout=int(got.get("connect_timeout") or 10),
            parallel=int(got.get("parallel", 10)),
            build_parallel=got.get("build_parallel"),
            fail_fast=bool(got.get("fail_fast")),
            max_failures=got.get("max_failures"),
            skip_unreachable=bool(got.get("skip_unreachable")),
            lock_wait=int(got.get("lock_wait") or 0),
            compress=bool(got.get("compress")),
        ),
        safety=Safety(
            always_activate=bool(got.get("always_activate")),
            auto_rollback=not got.get("no_auto_rollback"),
            magic_rollback=not got.get("no_magic_rollback"),
            health_checks=not got.get("no_checks"),
            reboot=bool(got.get("reboot")),
            allow_reboot=bool(got.get("allow_reboot")),
            reboot_timeout=int(got.get("reboot_timeout") or 300),
        ),
        cache=CacheChoice(
            store=got.get("cache"),
            key_file=got.get("cache_key"),
            url=got.get("cache_url"),
            serve_directory=got.get("directory"),
            listen=str(got.get("listen") or "0.0.0.0:8080"),
        ),
        goal=goal,
        remote_command=tuple(remote_command),
        machine=got.get("host") or got.get("node"),
        to=got.get("to"),
        last=int(got.get("last") or 0),
        pre_deploy=bool(got.get("pre_deploy")),
        upload_keys=not got.get("no_keys"),
        ask_sudo_password=bool(got.get("ask_sudo_password")),
        build_host=got.get("build_host"),
        no_build=bool(got.get("no_build")),
        dry_activate_plan=bool(got.get("plan_dry_activate")),
        confirm=bool(got.get("confirm")),
        yes=bool(got.get("yes")),
        dry_run=bool(got.get("dry_run")),
        state_file=Path(got["state_file"]) if got.get("state_file") else None,
        deployments=tuple(got.get("deployments") or ()),
        replace=bool(got.get("replace")),
        shell=got.get("shell"),
    )
