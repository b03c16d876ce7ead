"""Shell completions: `nixlift completions bash|zsh|fish` prints a script that shtab generates
from the parser itself (so it never lags behind an option), plus the few completers that need
nixlift: registered names (-d) and the machines of the network on the line (--on, --include,
--exclude, --node, ssh's MACHINE). Those call back `nixlift __complete KIND INDEX WORD…`, which
evaluates only the network's names and is silent whatever goes wrong: a TAB never prints an
error. shtab is imported here, on use, never by the commands that deploy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sys
from collections.abc import Iterator
from typing import Any

from nixlift.cli.options import Invocation
from nixlift.cli.parser import GOALS, build_parser, split_remote_command

#: the hidden first word of the completion scripts' calls back into nixlift
HELPER = "__complete"
#: stands in for the word being completed, so the rest of the line parses as it will
_PLACEHOLDER = "__nixlift_completing__"
#: a TAB that waits longer than this for nix gets no machine names
EVAL_TIMEOUT = 8.0

#: the destinations completed with machine names, registered names, files and directories
_MACHINE_DESTS = ("on", "include_machines", "exclude", "node", "host")
_DIRECTORY_DESTS = ("log_dir", "nixpkgs", "directory", "flake")
_FILE_DESTS = ("state_file", "cache_key")

_GOAL_WORDS = " ".join(GOALS)

# The completers, per shell. Each passes the whole line (the program's name left out) and the
# index of the word being completed; nixlift puts a placeholder there and parses the line as
# the command will, so the network given anywhere on it (files, -d, --flake, --arg …) counts.
_BASH = f"""
_nixlift_complete_machines() {{
  "${{COMP_WORDS[0]}}" {HELPER} machines "$((COMP_CWORD - 1))" "${{COMP_WORDS[@]:1}}" 2>/dev/null
}}
_nixlift_complete_deployments() {{
  "${{COMP_WORDS[0]}}" {HELPER} deployments 0 "$1" 2>/dev/null
}}
# (named *_files: shtab then treats what it offers as file names)
_nixlift_complete_goals_or_files() {{
  compgen -W "{_GOAL_WORDS}" -- "$1"
  compgen -f -- "$1"
}}
"""
_ZSH = f"""
_nixlift_complete_machines() {{
  local -a names
  names=(${{(f)"$(nixlift {HELPER} machines $((CURRENT - 1)) "${{(@)words}}" 2>/dev/null)"}})
  compadd -- $names
}}
_nixlift_complete_deployments() {{
  local -a names
  names=(${{(f)"$(nixlift {HELPER} deployments 0 "$PREFIX" 2>/dev/null)"}})
  compadd -- $names
}}
_nixlift_complete_goals_or_files() {{
  _alternative 'goals:goal:({_GOAL_WORDS})' 'files:network file:_files'
}}
"""
_FISH = f"""
function _nixlift_complete_machines
  set -l words (commandline -opc)
  set -e words[1]
  nixlift {HELPER} machines (count $words) $words (commandline -ct) 2>/dev/null
end
function _nixlift_complete_deployments
  nixlift {HELPER} deployments 0 (commandline -ct) 2>/dev/null
end
"""


def _completers(shtab: Any) -> dict[str, dict[str, Any]]:
    """shtab's `.complete` values: a function name per shell, with the functions above as the
    script's preamble (shtab writes each preamble once)."""
    preamble = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}
    return {
        "machines": {
            "bash": "_nixlift_complete_machines",
            "zsh": "_nixlift_complete_machines",
            "fish": "(_nixlift_complete_machines)",
            "preamble": preamble,
        },
        "deployments": {
            "bash": "_nixlift_complete_deployments",
            "zsh": "_nixlift_complete_deployments",
            "fish": "(_nixlift_complete_deployments)",
            "preamble": preamble,
        },
        "goals_or_files": {
            "bash": "_nixlift_complete_goals_or_files",
            "zsh": "_nixlift_complete_goals_or_files",
            "fish": f"(__fish_complete_path (commandline -ct)) {_GOAL_WORDS}",
            "preamble": preamble,
        },
        "file": shtab.FILE,
        "directory": shtab.DIRECTORY,
    }


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (command name, parser) of the tree, the root's name being ''."""
    yield "", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {n}".strip(), p) for n, p in _parsers(sub))


def annotated_parser() -> argparse.ArgumentParser:
    """The parser with shtab's `.complete` on the arguments nixlift completes itself."""
    import shtab

    completers = _completers(shtab)
    parser = build_parser()
    for command, p in _parsers(parser):
        _short_descriptions(p)
        for action in p._actions:
            kind = None
            if action.dest in _MACHINE_DESTS:
                kind = "machines"
            elif action.dest == "deployment":
                kind = "deployments"
            elif action.dest == "network":
                kind = "goals_or_files" if command in ("deploy", "apply-local") else "file"
            elif action.dest in _DIRECTORY_DESTS:
                kind = "directory"
            elif action.dest in _FILE_DESTS:
                kind = "file"
            if kind is not None:
                setattr(action, "complete", completers[kind])  # noqa: B010 (shtab's attribute)
    return parser


def _short_descriptions(parser: argparse.ArgumentParser) -> None:
    """shtab describes a command in zsh's and fish's menus by its parser's description, a
    paragraph written for --help; the one line of the command list reads better there."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                command = action.choices[listed.dest]
                command.description = listed.help


def script(shell: str) -> str:
    import shtab

    text: str = shtab.complete(annotated_parser(), shell=shell)
    return text


async def cmd_completions(inv: Invocation) -> int:
    print(script(inv.shell or "bash"))
    return 0


# --- what the scripts call back ------------------------------------------------------------------


def helper(args: list[str]) -> int:
    """`nixlift __complete KIND INDEX WORD…`: the candidates for WORD[INDEX], one a line. Never an
    error on the terminal a person is typing in: anything that goes wrong offers nothing."""
    try:
        kind, index, *words = args
        i = int(index)
        current = words[i] if 0 <= i < len(words) else ""
        with contextlib.redirect_stderr(io.StringIO()):
            if kind == "deployments":
                names = _deployments()
            elif kind == "machines":
                words[i : i + 1] = [_PLACEHOLDER]
                names = asyncio.run(asyncio.wait_for(_machines(words), EVAL_TIMEOUT))
            else:
                names = []
    except (Exception, KeyboardInterrupt):  # a completion that fails offers nothing
        return 0
    # --on a,b,<TAB>: the names after the last comma not given yet, the rest kept as typed
    head, comma, tail = current.rpartition(",") if kind == "machines" else ("", "", current)
    given = set(head.split(","))
    for name in names:
        if name.startswith(tail) and name not in given:
            print(f"{head}{comma}{name}")
    sys.stdout.flush()
    return 0


def _deployments() -> list[str]:
    from nixlift.registry import Registry

    return [e.name for e in Registry().entries()]


async def _machines(words: list[str]) -> list[str]:
    from nixlift.cli.options import from_namespace
    from nixlift.cli.source import resolve
    from nixlift.nix.evaluate import machine_names

    words, remote = split_remote_command(words)
    inv = from_namespace(build_parser().parse_args(words), remote)
    req = await resolve(inv.network)
    return await machine_names(req.source, req.settings)
