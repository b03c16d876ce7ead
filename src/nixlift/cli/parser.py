"""The command line: argparse, NixOps' verbs and flags where they exist.

Parsed as people type: every command's options and words in any order (argparse's intermixed
parsing, per command), nixlift's own options (-v, -q, --debug, --color) before or after the
command, and a wrong word answered with what was meant ("did you mean …?") as a UsageError
(exit 2), never argparse's usage dump."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from nixlift import __version__
from nixlift.errors import UsageError
from nixlift.goal import Goal

#: the goals, in the order people meet them (the default first)
GOALS = tuple(
    g.value for g in (Goal.SWITCH, Goal.BOOT, Goal.TEST, Goal.DRY_ACTIVATE, Goal.BUILD, Goal.PUSH)
)

#: NixOps' goal flags and the goal each stands for
GOAL_FLAGS = {
    "--build-only": Goal.BUILD,
    "--copy-only": Goal.PUSH,
    "--dry-activate": Goal.DRY_ACTIVATE,
    "--test": Goal.TEST,
    "--boot": Goal.BOOT,
}

#: the options of nixlift itself, accepted before and after the command; --color takes a word
GLOBAL_VALUE_OPTIONS = ("--color",)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'switch'?)`, or nothing when no choice is close."""
    import difflib  # (a misspelt word's: not every start's)

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's wrapping for prose; a text with indented lines (the examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n  " in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are nixlift's: a UsageError naming the command's --help,
    and the closest choice for a misspelt one."""

    def error(self, message: str) -> NoReturn:
        lists = "the commands" if self._subparsers is not None else "its options"
        raise UsageError(message, hint=f"`{self.prog} --help` lists {lists}")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        if isinstance(action, argparse._SubParsersAction):
            message = f"unknown command '{value}'{did_you_mean(str(value), names)}"
            raise argparse.ArgumentError(None, message)
        shown = ", ".join(names)
        raise argparse.ArgumentError(
            action, f"'{value}' is not one of {shown}{did_you_mean(str(value), names)}"
        )


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommand action: each command parses its own words intermixed (options and
    positional words in any order); unknown options are named with the closest known one."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list)
        name, rest = values[0], values[1:]
        setattr(namespace, str(self.dest), name)
        command = self._name_parser_map[name]
        # a command with commands of its own (cache serve) cannot be parsed intermixed itself;
        # its own commands are
        nested = any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
        if nested:
            sub, extras = command.parse_known_args(rest, None)
        else:
            sub, extras = command.parse_known_intermixed_args(rest, None)
        for key, value in vars(sub).items():
            setattr(namespace, key, value)
        if extras:
            command.error(_unrecognized(command, extras))


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    first = extras[0]
    if first.startswith("-") and first != "-":
        known = [s for a in parser._actions for s in a.option_strings]
        word = first.split("=", 1)[0]
        return f"unknown option {word}{did_you_mean(word, known)}"
    return f"unexpected word{'s' if len(extras) > 1 else ''}: {' '.join(extras)}"


def _network_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network")
    g.add_argument(
        "network",
        nargs="*",
        metavar="NETWORK",
        help="network file(s), merged in order (NixOps, morph, colmena), or one flake "
        "(a directory with flake.nix, REF#ATTR, path:…, git+…, github:…); none: the "
        "nearest flake.nix, hive.nix, nixops.nix or network.nix from here upward",
    )
    g.add_argument(
        "--flake",
        metavar="REF[#ATTR]",
        help="read the network from a flake: colmenaHive, colmena, "
        "nixopsConfigurations.default, deploy or nixosConfigurations (the first present), "
        "or the output ATTR (.#pi3: one machine of nixosConfigurations)",
    )
    g.add_argument(
        "-d",
        "--deployment",
        metavar="NAME",
        help="a deployment registered with `nixlift create` (or the name to give)",
    )
    g.add_argument(
        "--arg",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "EXPR"),
        help="argument for a network file that is a function (a Nix expression)",
    )
    g.add_argument(
        "--argstr",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="string argument for a network file that is a function",
    )
    g.add_argument(
        "-I",
        dest="search_path",
        action="append",
        default=[],
        metavar="PATH",
        help="add to the Nix search path, e.g. -I nixpkgs=/path/to/nixpkgs",
    )
    g.add_argument(
        "--nixpkgs",
        metavar="PATH",
        help="nixpkgs to evaluate with when the network does not set network.nixpkgs",
    )
    g.add_argument("--show-trace", action="store_true", help="show Nix's evaluation trace")


def _selection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection")
    g.add_argument(
        "--on",
        action="append",
        default=[],
        metavar="NAMES",
        help="machines to act on: names, globs (web-*), @tags; comma-separated",
    )
    g.add_argument(
        "--include",
        dest="include_machines",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME",
        help="like --on (NixOps)",
    )
    g.add_argument(
        "--exclude",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME",
        help="machines to leave out: names, globs, @tags",
    )
    g.add_argument(
        "--tagged",
        action="append",
        default=[],
        metavar="T1,T2",
        help="only machines with every one of these tags (morph)",
    )
    g.add_argument(
        "--skip",
        type=_count,
        default=0,
        metavar="N",
        help="leave out the first N selected machines, in deploy order (morph)",
    )
    g.add_argument(
        "--every",
        type=_positive,
        default=1,
        metavar="N",
        help="then take every Nth machine (morph)",
    )
    g.add_argument(
        "--limit",
        type=_count,
        default=0,
        metavar="N",
        help="then at most N machines (morph; 0: no limit)",
    )


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def _count(text: str) -> int:
    """0, 1, 2, …"""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative (0 or more)")
    return value


def _positive(text: str) -> int:
    """1, 2, 3, … (timeouts, how many at once when 0 would mean nothing at all)"""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number (1 or more)")
    return value


def _max_jobs(text: str) -> str:
    """nix's --max-jobs: a count or `auto`."""
    return text if text == "auto" else str(_count(text))


def _build_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("building")
    g.add_argument("--builders", metavar="SPEC", help="nix remote builders, as nix's --builders")
    g.add_argument(
        "-j", "--max-jobs", type=_max_jobs, metavar="N", help="nix's --max-jobs (a count or auto)"
    )
    g.add_argument(
        "--option",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a nix option for evaluation and builds",
    )
    g.add_argument(
        "--keep-result",
        action="store_true",
        help="keep GC roots for the built systems (under the nixlift state dir)",
    )
    g.add_argument(
        "--build-host",
        metavar="[USER@]HOST",
        help="build there (reached with NIX_SSHOPTS and the machines' sshOptions), copy from "
        "there to the targets (nixos-rebuild's flag; deployment.buildHost per machine)",
    )


def _rollout_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rollout")
    g.add_argument(
        "--parallel",
        type=_count,
        default=10,
        metavar="N",
        help="hosts copied to and activated at once (0: all; default 10)",
    )
    g.add_argument(
        "--build-parallel",
        type=_positive,
        default=None,
        metavar="N",
        help="local builds at once (default: the number of CPUs, at least 2)",
    )
    g.add_argument(
        "--fail-fast", action="store_true", help="stop starting work at the first failed host"
    )
    g.add_argument(
        "--max-failures",
        metavar="N|N%",
        help="stop starting work once more than N hosts (or N%% of them) failed",
    )
    g.add_argument(
        "--skip-unreachable",
        action="store_true",
        help="report hosts that cannot be reached as skipped and deploy the rest",
    )
    _connect_timeout(g)
    _compress(g)
    g.add_argument("--log-dir", metavar="DIR", help="write each host's whole log to DIR/HOST.log")
    g.add_argument(
        "--progress",
        choices=("auto", "live", "plain"),
        default="auto",
        help="live table on a terminal, [host] lines otherwise (default auto)",
    )


GOAL_TEXT = (
    f"GOAL is one of {', '.join(GOALS)} (default switch), anywhere among the words; or one of "
    "NixOps' flags below. A word that is a goal's name is always the goal: a network file or "
    "directory of that name is given as a path (./test)."
)


def _goal_and_safety_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("goal", GOAL_TEXT)
    for flag, goal in GOAL_FLAGS.items():
        g.add_argument(
            flag,
            dest="goal_flags",
            action="append_const",
            const=flag,
            help=f"same as the goal '{goal.value}'",
        )
    g.add_argument(
        "--always-activate",
        action="store_true",
        help="activate even where deployment.alwaysActivate is false",
    )
    g = p.add_argument_group("safety")
    g.add_argument(
        "--no-auto-rollback",
        action="store_true",
        help="leave a host whose activation failed as it is (this run only)",
    )
    g.add_argument(
        "--no-magic-rollback",
        action="store_true",
        help="do not have hosts wait for a confirmation over a new connection (this run only)",
    )
    g.add_argument(
        "--reboot",
        action="store_true",
        help="make the new system the boot default, reboot, and check the host "
        "comes back running it (else go back to the previous one)",
    )
    g.add_argument(
        "--allow-reboot",
        action="store_true",
        help="reboot hosts whose activation says a reboot is required",
    )
    g.add_argument(
        "--reboot-timeout",
        type=_positive,
        default=300,
        metavar="SECONDS",
        help="how long a host may take to come back (default 300)",
    )
    g.add_argument(
        "--no-checks",
        action="store_true",
        help="skip deployment.preDeployChecks and healthChecks (this run only)",
    )
    g.add_argument(
        "--lock-wait",
        type=_count,
        default=0,
        metavar="SECONDS",
        help="wait this long for another deployer's lock on a host (default: 0, "
        "fail at once naming the holder)",
    )
    g.add_argument(
        "--no-keys",
        action="store_true",
        help="do not upload deployment.keys and deployment.secrets (this run only)",
    )
    g.add_argument(
        "--upload-secrets",
        action="store_true",
        help="morph's flag, accepted: nixlift uploads secrets on every deploy",
    )
    _sudo_password(g)


def _cache_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "binary cache",
        "push each system once to a cache and have the hosts fetch it from there "
        "(network.cache in the file says the same)",
    )
    g.add_argument(
        "--cache",
        metavar="STORE_URL",
        help="where to push: file:///DIR, s3://BUCKET, ssh-ng://HOST, …",
    )
    g.add_argument(
        "--cache-key",
        metavar="FILE",
        help="nix's secret key to sign with (nix key generate-secret)",
    )
    g.add_argument(
        "--cache-url",
        metavar="URL",
        help="where the hosts fetch from, when not the store URL itself "
        "(e.g. http://ADDRESS:PORT of `nixlift cache serve`)",
    )


def _compress(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--compress",
        action="store_true",
        help="compress what goes over SSH (for slow links; costs CPU on fast ones); "
        "deployment.compress asks it per machine",
    )


def _connect_timeout(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--connect-timeout",
        type=_positive,
        default=10,
        metavar="SECONDS",
        help="SSH connect timeout (default 10)",
    )


def _hosts_args(p: argparse.ArgumentParser, *, parallel: int = 0) -> None:
    """Commands that act on the selected hosts themselves (exec, check, rollback, …)."""
    _network_args(p)
    _selection_args(p)
    _connect_timeout(p)
    _sudo_password(p)
    p.add_argument(
        "--parallel",
        type=_count,
        default=parallel,
        metavar="N",
        help=f"hosts at once (0: all; default {parallel or 'all'})",
    )


def _sudo_password(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--ask-sudo-password",
        "--interactive-sudo",
        dest="ask_sudo_password",
        action="store_true",
        help="ask once, on the terminal, for the sudo password of SSH users that "
        "are not root (sent to sudo on stdin; never in argv or a log)",
    )


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON document on stdout")


#: commands whose words after `--` go to the host, not to argparse
REMOTE_COMMANDS = ("exec", "ssh")


def split_remote_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`nixlift exec NET -- ls -l`: argparse gets what is before `--`, the host the rest."""
    command = command_word(argv)
    if command in REMOTE_COMMANDS and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def command_word(argv: list[str]) -> str | None:
    """The first word that is not an option of nixlift's own (nor --color's value)."""
    takes_value = False
    for word in argv:
        if takes_value:
            takes_value = False
        elif word in GLOBAL_VALUE_OPTIONS:
            takes_value = True
        elif not word.startswith("-"):
            return word
    return None


def _global_args(p: argparse.ArgumentParser, *, command: bool) -> None:
    """nixlift's own options. A command accepts them too (after its name), with no default of
    its own, so that one given before the command is not reset by the command's parser."""
    g = p.add_argument_group("general (before or after the command)") if command else p
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if command else {}
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show build and activation output as it happens",
        **default,
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress: only errors and, when a host failed, the closing summary",
        **default,
    )
    g.add_argument(
        "--debug", action="store_true", help="log every command run and show tracebacks", **default
    )
    g.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        metavar="WHEN",
        help="colours of the live view and of plan's output (plain progress lines have "
        "none): auto (on a terminal, unless NO_COLOR is set), always or never",
        **default,
    )


#: two or three real command lines per command, shown at the end of its --help and in the man page
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "deploy": (
        ("nixlift deploy ./network.nix", "build, copy and switch every machine"),
        ("nixlift deploy -d web --on 'web-*' boot", "the web machines boot it at the next reboot"),
        ("nixlift deploy --flake . dry-activate --json", "what activation would change, as JSON"),
    ),
    "plan": (
        ("nixlift plan ./network.nix", "what a deploy would change on each host, changing none"),
        ("nixlift plan -d web --no-build --json", "without building: what building would take"),
        ("nixlift plan --on web-1 --dry-activate", "also the units web-1 would restart"),
    ),
    "apply-local": (
        ("nixlift apply-local ./network.nix", "this machine, as the machine named like it"),
        ("nixlift apply-local --node pi3 -d rpi test", "as pi3, without changing the boot default"),
    ),
    "build": (
        ("nixlift build ./network.nix", "build every machine's system and print its path"),
        ("nixlift build -d web --on web-1 --keep-result", "and keep it from nix's GC"),
    ),
    "eval": (
        ("nixlift eval ./network.nix", "each machine's system, target and .drv"),
        ("nixlift eval --flake . --json", "the same from a flake, as JSON"),
    ),
    "info": (
        ("nixlift info -d web", "what each host runs against what the network builds"),
        ("nixlift info ./network.nix --on @edge --json", "the machines tagged edge, as JSON"),
    ),
    "exec": (
        ("nixlift exec ./network.nix -- uptime", "on every host at once"),
        ("nixlift exec -d web --on 'web-*' -- 'systemctl is-failed nginx || true'", "a shell line"),
    ),
    "ssh": (
        ("nixlift ssh web-1 ./network.nix", "a shell on web-1 with its deployment's SSH settings"),
        ("nixlift ssh pi3 -d rpi -- journalctl -b -n 50", "one command"),
    ),
    "check": (
        ("nixlift check -d web", "run every host's health checks now"),
        ("nixlift check ./network.nix --on db-1 --pre-deploy --json", "the pre-deploy checks"),
    ),
    "upload-keys": (
        ("nixlift upload-keys -d web", "after a reboot emptied /run/keys"),
        ("nixlift upload-keys ./network.nix --on db-1", "one host"),
    ),
    "rollback": (
        ("nixlift rollback -d web --on web-1", "back to the generation before the current one"),
        ("nixlift rollback ./network.nix --on web-1 --to 41", "to generation 41"),
    ),
    "list-generations": (
        ("nixlift list-generations -d web", "each host's system generations"),
        ("nixlift list-generations ./network.nix --on web-1 --json", "one host's, as JSON"),
    ),
    "history": (
        ("nixlift history -d web --last 5", "the last five deploys each host recorded"),
        ("nixlift history ./network.nix --on web-1 --json", "one host's, as JSON"),
    ),
    "create": (
        ("nixlift create ./network.nix -d web", "then: nixlift deploy -d web"),
        ("nixlift create ./network.nix --argstr env prod -d web-prod", "with an argument"),
        ("nixlift create --flake .#colmena -d fleet --force", "a flake's output, replacing fleet"),
    ),
    "import-nixops": (
        ("nixlift import-nixops", "every deployment of NixOps' own state file"),
        ("nixlift import-nixops ~/.nixops/deployments.nixops -d web", "one of them"),
    ),
    "list": (
        ("nixlift list", "the registered names and their files"),
        ("nixlift list --json", "as JSON"),
    ),
    "delete": (
        ("nixlift delete -d web", "forget the name web (its hosts are untouched)"),
        ("nixlift delete --deployment old-fleet", "the same, spelt out (NixOps' form)"),
    ),
    "cache": (
        ("nixlift cache serve /srv/nix-cache", "serve a file:// cache on port 8080"),
        ("nixlift cache serve /srv/nix-cache --listen 127.0.0.1:9000", "elsewhere"),
    ),
    "completions": (
        (
            "nixlift completions bash > ~/.local/share/bash-completion/completions/nixlift",
            "bash, from the next shell on",
        ),
        ("nixlift completions zsh > ~/.zfunc/_nixlift", "zsh, with ~/.zfunc on $fpath"),
        ("nixlift completions fish > ~/.config/fish/completions/nixlift.fish", "fish"),
    ),
}


def examples_text(command: str) -> str:
    lines = ["examples:"]
    for line, what in EXAMPLES[command]:
        lines += [f"  {line}", f"      {what}"]
    return "\n".join(lines)


def _command(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    *,
    examples: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A command's parser, with its examples at the end of its --help."""
    example_key = examples or name
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        formatter_class=HelpFormatter,
        epilog=examples_text(example_key) if example_key in EXAMPLES else None,
        **kwargs,
    )
    return p


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command's parser under `parser` (an alias's once), nested ones too."""
    found: dict[int, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found.setdefault(id(command), command)
                for nested in _commands(command):
                    found.setdefault(id(nested), nested)
    return list(found.values())


def _deploy(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "deploy",
        help="build, copy and activate (default goal: switch)",
        usage="nixlift deploy [NETWORK …] [GOAL] [-d NAME | --flake REF] [--on NAMES] [options]",
        description="Build every selected machine's system, copy it to the host and activate it. "
        + GOAL_TEXT,
    )
    _network_args(p)
    _selection_args(p)
    _build_args(p)
    _output_args(p)
    _goal_and_safety_args(p)
    _rollout_args(p)
    _cache_args(p)

    g = p.add_argument_group("confirmation")
    g.add_argument(
        "--confirm",
        "--interactive",
        dest="confirm",
        action="store_true",
        help="show the plan (as `nixlift plan` does), then ask `Deploy to N hosts? [y/N]` "
        "on the terminal (deploy-rs' --interactive)",
    )
    g.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="with --confirm: show the plan and deploy without asking (where no terminal is)",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="show the plan and stop: `nixlift plan` (NixOps' deploy --dry-run)",
    )


def _plan(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "plan",
        usage="nixlift plan [NETWORK …] [GOAL] [-d NAME | --flake REF] [--on NAMES] [options]",
        help="what a deploy would change on each host, changing nothing",
        description="Evaluate, build what is not built, and say per host what a deploy would "
        "change: the system it runs and the one it would run, package changes (as `nix store "
        "diff-closures`), what the copy would send, closure sizes, whether it activates, keys "
        "to upload; then the fleet's summary. Nothing on any host changes (no lock is taken, "
        "nothing is written there; --dry-activate copies the new system to run the host's own "
        "dry-activate). Exit 1 if a host cannot be reached or read. GOAL: plan as `nixlift "
        "deploy GOAL` would run (switch by default).",
    )
    _network_args(p)
    _selection_args(p)
    _build_args(p)
    g = p.add_argument_group("plan")
    g.add_argument(
        "--no-build",
        action="store_true",
        help="build nothing: list what building would build and fetch (nix's dry run); "
        "package changes only for systems already built",
    )
    g.add_argument(
        "--dry-activate",
        dest="plan_dry_activate",
        action="store_true",
        help="also show each changing host's own `switch-to-configuration dry-activate` "
        "(units it would start, stop, restart, reload); this copies the new system there",
    )
    g.add_argument(
        "--always-activate",
        action="store_true",
        help="plan as a deploy with --always-activate would run",
    )
    g.add_argument(
        "--no-keys", action="store_true", help="plan as a deploy with --no-keys would run"
    )
    _connect_timeout(g)
    _compress(g)
    _sudo_password(g)
    g.add_argument(
        "--build-parallel",
        type=_count,
        default=None,
        metavar="N",
        help="local builds at once (default: the number of CPUs, at least 2)",
    )
    _output_args(p)


def _apply_local(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "apply-local",
        help="deploy the machine named like this host onto it",
        usage="nixlift apply-local [NETWORK …] [GOAL] [-d NAME | --flake REF] [--node NAME] "
        "[options]",
        description="Build and activate, on this machine itself and without "
        "SSH, the network's machine named like this host (or "
        "--node NAME); it must set deployment.allowLocalDeployment "
        "(colmena's apply-local). Commands that need root run "
        "through sudo when nixlift does not run as root. " + GOAL_TEXT,
    )
    _network_args(p)
    p.add_argument("--node", metavar="NAME", help="the machine to deploy (default: hostname)")
    _build_args(p)
    _output_args(p)
    _goal_and_safety_args(p)
    _rollout_args(p)


def _build(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "build",
        help="build the selected machines' systems, nothing else",
        description="Build every selected machine's system on this machine.",
    )
    _network_args(p)
    _selection_args(p)
    _build_args(p)
    _rollout_args(p)
    _output_args(p)


def _eval(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "eval",
        help="evaluate: each machine's system, options and .drv",
        description="Evaluate the network and print each selected machine's "
        "name, system, deployment options and toplevel .drv path.",
    )
    _network_args(p)
    _selection_args(p)
    p.add_argument(
        "--option",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a nix option for evaluation",
    )
    _output_args(p)


def _info(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "info",
        help="what each host runs now versus what the network builds",
        description="Per machine: target, system, the system the host runs now "
        "and the one the network builds; up to date or not.",
    )
    _network_args(p)
    _selection_args(p)
    p.add_argument(
        "--option",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a nix option for evaluation",
    )
    _connect_timeout(p)
    _sudo_password(p)
    p.add_argument(
        "--parallel",
        type=_count,
        default=0,
        metavar="N",
        help="hosts asked at once (0: all, the default)",
    )
    _output_args(p)


def _exec(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "exec",
        help="run a command on the selected hosts at once",
        usage="nixlift exec [NETWORK …] [-d NAME] [--on …] -- COMMAND …",
        description="Run a command on every selected host in parallel, its "
        "output prefixed with the host's name. One argument with "
        "spaces is a shell command line (sh -c).",
    )
    _hosts_args(p, parallel=10)


def _ssh(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "ssh",
        help="an interactive shell on one host, with its SSH settings",
        usage="nixlift ssh MACHINE [NETWORK …] [-d NAME] [-- COMMAND …]",
        description="Open ssh to a machine of the network with the same host, "
        "port, user and options a deploy uses.",
    )
    p.add_argument("host", metavar="MACHINE")
    _network_args(p)
    _connect_timeout(p)


def _check(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "check",
        help="run the hosts' health checks now",
        description="Run each selected machine's deployment.healthChecks (and "
        "systemd's verdict where the host runs systemd) and report "
        "a table; exit 1 if any check fails.",
    )
    _hosts_args(p)
    p.add_argument(
        "--pre-deploy", action="store_true", help="run deployment.preDeployChecks instead"
    )
    _output_args(p)


def _upload_keys(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "upload-keys",
        aliases=["send-keys"],
        help="upload keys and secrets without deploying",
        description="Upload each selected machine's deployment.keys (NixOps, "
        "colmena) and deployment.secrets (morph) now, e.g. after a "
        "reboot emptied /run/keys; unchanged ones are left as they "
        "are, ones no longer declared are removed.",
    )
    _hosts_args(p)
    p.add_argument("--lock-wait", type=_count, default=0, metavar="SECONDS")
    _output_args(p)


def _rollback(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "rollback",
        help="switch hosts back to an earlier generation",
        description="Switch each selected host's system profile back to the "
        "generation before its current one (or --to N) and activate "
        "it. Read from the hosts themselves: works whatever the "
        "network file says now.",
    )
    _hosts_args(p)
    p.add_argument("--to", type=_positive, metavar="GEN", help="the generation number to go to")
    p.add_argument("--lock-wait", type=_count, default=0, metavar="SECONDS")


def _list_generations(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "list-generations",
        help="the system generations on each host",
        description="List each selected host's system generations, marking "
        "the current (boot default) and the running one.",
    )
    _hosts_args(p)
    _output_args(p)


def _history(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "history",
        help="the deploy history each host keeps",
        description="Show the deploys recorded on each selected host: when, "
        "who from where, which system, goal, result, git commit.",
    )
    _hosts_args(p)
    p.add_argument(
        "--last", type=_count, default=0, metavar="N", help="only the last N records (0: all)"
    )
    _output_args(p)


def _create(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "create",
        help="remember network files or a flake under a name (-d NAME)",
        description="Register network files (and their arguments), or a flake (--flake REF), "
        "under a name, so `nixlift deploy -d NAME` finds them. Nothing else is kept.",
    )
    _network_args(p)
    p.add_argument(
        "--force",
        dest="replace",
        action="store_true",
        help="point a name that is already registered at this network",
    )


def _import_nixops(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "import-nixops",
        help="register NixOps' deployments (from its state file) under their names",
        description="Read NixOps' state file (STATE_FILE, else $NIXOPS_STATE, else "
        "~/.nixops/deployments.nixops) without changing it, and register each deployment's "
        "name with its network files and arguments, so `nixlift deploy -d NAME` works. "
        "Says what it cannot carry over (cloud resources, generated SSH keys, machines of "
        "other backends).",
    )
    p.add_argument("state_file", nargs="?", metavar="STATE_FILE")
    p.add_argument(
        "-d",
        "--deployment",
        dest="deployments",
        action="append",
        default=[],
        metavar="NAME",
        help="only this deployment (name or UUID); may be repeated",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace names already registered (default: leave them and say so)",
    )


def _list(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "list",
        help="list registered deployments",
        description="List the names `nixlift create` registered.",
    )
    _output_args(p)


def _delete(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "delete",
        help="forget a registered name (hosts are not touched)",
        description="Forget a deployment name. Hosts keep running what they run.",
    )
    p.add_argument("-d", "--deployment", metavar="NAME", required=True)


def _cache(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "cache",
        help="a binary cache for a fleet (serve a file:// cache over HTTP)",
        description="Helpers for the binary cache of `deploy --cache`.",
    )
    cs = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True, action=Commands)
    q = _command(
        cs,
        "serve",
        examples="cache",
        help="serve a file:// binary cache over HTTP (for a LAN)",
        description="Serve DIR, a binary cache nixlift pushed to (--cache file://DIR), over "
        "HTTP until interrupted, so that hosts can fetch from it (--cache-url http://ADDRESS:PORT"
        "). Any web server serving DIR works the same.",
    )
    q.add_argument("directory", metavar="DIR")
    q.add_argument(
        "--listen",
        default="0.0.0.0:8080",
        metavar="ADDRESS:PORT",
        help="where to listen (default 0.0.0.0:8080)",
    )


def _completions(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = _command(
        sub,
        "completions",
        help="print a completion script for bash, zsh or fish",
        description="Print a completion script for SHELL on stdout: commands, options, goals, "
        "registered names (-d) and the machines of the network on the line (--on, ssh).",
    )
    p.add_argument("shell", metavar="SHELL", choices=("bash", "zsh", "fish"))


#: each command's names (its aliases after it) and what declares it, in --help's order
COMMAND_DECLARATIONS: tuple[
    tuple[tuple[str, ...], Callable[[argparse._SubParsersAction], None]], ...  # type: ignore[type-arg]
] = (
    (("deploy",), _deploy),
    (("plan",), _plan),
    (("apply-local",), _apply_local),
    (("build",), _build),
    (("eval",), _eval),
    (("info",), _info),
    (("exec",), _exec),
    (("ssh",), _ssh),
    (("check",), _check),
    (("upload-keys", "send-keys"), _upload_keys),
    (("rollback",), _rollback),
    (("list-generations",), _list_generations),
    (("history",), _history),
    (("create",), _create),
    (("import-nixops",), _import_nixops),
    (("list",), _list),
    (("delete",), _delete),
    (("cache",), _cache),
    (("completions",), _completions),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """nixlift's parser. With `command`, only that command's options are declared (all of them
    are ~15 ms of every start here); a word that names no command gets them all, for its
    error. (`nixlift --help` lists every command: it needs them all.)"""
    parser = Parser(
        prog="nixlift",
        description="Build NixOS systems here, copy them to hosts over SSH and switch them.",
        formatter_class=HelpFormatter,
        epilog="`nixlift COMMAND --help` shows a command's options and examples.\n\n"
        + examples_text("deploy"),
    )
    parser.add_argument("-V", "--version", action="version", version=f"nixlift {__version__}")
    _global_args(parser, command=False)
    # not required: `nixlift` alone prints the command list (main.py)
    sub = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", action=Commands
    )
    known = any(command in names for names, _ in COMMAND_DECLARATIONS)
    for names, declare in COMMAND_DECLARATIONS:
        if not known or command in names:
            declare(sub)

    # last, so that they close each command's list of options
    for declared in _commands(parser):
        _global_args(declared, command=True)
    return parser
