"""Entry point: parse argv, run the command, turn errors into text and exit codes.

Exit codes: 0 success, 1 some host failed, 2 bad usage or network file, 130 interrupted.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from nixlift import proc
from nixlift.cli.options import Invocation, from_namespace
from nixlift.cli.parser import build_parser, command_word, split_remote_command
from nixlift.errors import NixliftError

Command = Callable[[Invocation], Coroutine[Any, Any, int]]

#: completions.HELPER, named here so that a plain command does not import the completions
COMPLETION_HELPER = "__complete"

#: each command's module and function, imported when that command runs: start-up is the largest
#: part of a no-op deploy, and no command needs the others' modules
COMMANDS: dict[str, tuple[str, str]] = {
    "deploy": ("deploy_cmd", "cmd_deploy"),
    "build": ("deploy_cmd", "cmd_build"),
    "plan": ("plan_cmd", "cmd_plan"),
    "apply-local": ("deploy_cmd", "cmd_apply_local"),
    "eval": ("network_cmd", "cmd_eval"),
    "info": ("network_cmd", "cmd_info"),
    "create": ("network_cmd", "cmd_create"),
    "list": ("network_cmd", "cmd_list"),
    "delete": ("network_cmd", "cmd_delete"),
    "import-nixops": ("import_cmd", "cmd_import_nixops"),
    "rollback": ("hosts_cmd", "cmd_rollback"),
    "check": ("hosts_cmd", "cmd_check"),
    "list-generations": ("hosts_cmd", "cmd_list_generations"),
    "history": ("hosts_cmd", "cmd_history"),
    "upload-keys": ("hosts_cmd", "cmd_upload_keys"),
    "cache-serve": ("cache_cmd", "cmd_cache_serve"),
    "exec": ("remote_cmd", "cmd_exec"),
    "ssh": ("remote_cmd", "cmd_ssh"),
    "completions": ("completions", "cmd_completions"),
}


#: what a command starts before the event loop runs: its module imports no asyncio (~30 ms of
#: a start, imported after it), and this starts what the command will wait for first
BEFORE_THE_LOOP: dict[str, str] = {"deploy": "start_evaluation", "build": "start_evaluation"}


def command(name: str) -> Command:
    module, function = COMMANDS[name]
    return cast(Command, getattr(importlib.import_module(f"nixlift.cli.{module}"), function))


def start_before_the_loop(inv: Invocation) -> None:
    if inv.command in BEFORE_THE_LOOP:
        module = importlib.import_module(f"nixlift.cli.{COMMANDS[inv.command][0]}")
        getattr(module, BEFORE_THE_LOOP[inv.command])(inv)


def import_asyncio_without_tls() -> None:
    """Import asyncio without the ssl module it would import for TLS streams: ~10 ms of
    every command here (OpenSSL's start), for streams nixlift never opens (ssh does its own
    cryptography). asyncio takes the ImportError as a Python built without ssl, which it
    supports. ssl itself stays importable: an https health check imports it when it runs."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # (None: `import ssl` fails)
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]


def run() -> int:
    """The `nixlift` program: main, then an exit without the interpreter's last garbage
    collections, which walk every object left (~20 ms of every command's end here, measured)
    when all a command opened is closed already."""
    code = main()
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [COMPLETION_HELPER]:
        # what the completion scripts ask while a person presses TAB: never an error
        from nixlift.cli import completions

        return completions.helper(args[1:])
    words, remote = split_remote_command(args)
    debug = "--debug" in words
    inv: Invocation | None = None
    try:
        asks_help = "-h" in words or "--help" in words
        parser = build_parser(None if asks_help else command_word(words))
        ns = parser.parse_args(words)
        if ns.command is None:
            # `nixlift` (or `nixlift -v`) alone: the commands, and exit 2 as for any usage error
            parser.print_help(sys.stderr)
            return 2
        inv = from_namespace(ns, remote)
        logging.basicConfig(
            level=logging.DEBUG if inv.output.debug else logging.WARNING,
            format="nixlift: %(message)s",
            stream=sys.stderr,
        )
        start_before_the_loop(inv)
        import_asyncio_without_tls()
        import asyncio

        return asyncio.run(command(inv.command)(inv))
    except NixliftError as e:
        report(e, debug=debug)
        if inv is not None and inv.output.json:
            # machines reading stdout get the failure as data too
            from nixlift.cli.output import document, error_of, print_json

            print_json(document(inv.command, error=error_of(e)))
        return e.exit_code
    except BrokenPipeError:
        # stdout closed early (`nixlift eval --json | head`): not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("nixlift: interrupted", file=sys.stderr)
        return 130
    finally:
        proc.stop_early()


def report(error: NixliftError, *, debug: bool = False) -> None:
    from nixlift.ui.format import error_lines  # (a failure's: not every start's)

    for line in error_lines(error, debug=debug):
        print(line, file=sys.stderr)
    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.flush()
