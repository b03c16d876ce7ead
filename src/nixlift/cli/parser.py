"""The command line: argparse, NixOps' verbs and flags where they exist."""

from __future__ import annotations

import argparse

from nixlift import __version__
from nixlift.model import Goal

GOALS = tuple(g.value for g in Goal)


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


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _build_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("building")
    g.add_argument("--builders", metavar="SPEC", help="nix remote builders, as nix's --builders")
    g.add_argument("-j", "--max-jobs", metavar="N", help="nix's --max-jobs")
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
        type=int,
        default=10,
        metavar="N",
        help="hosts copied to and activated at once (0: all; default 10)",
    )
    g.add_argument(
        "--build-parallel",
        type=int,
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


def _goal_and_safety_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("goal", f"a positional GOAL ({', '.join(GOALS)}) or NixOps' flags")
    for flag, goal in (
        ("--build-only", Goal.BUILD),
        ("--copy-only", Goal.PUSH),
        ("--dry-activate", Goal.DRY_ACTIVATE),
        ("--test", Goal.TEST),
        ("--boot", Goal.BOOT),
    ):
        g.add_argument(
            flag,
            dest="goal_flag",
            action="store_const",
            const=goal.value,
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
        type=int,
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
        type=int,
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
        type=int,
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
        type=int,
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
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in REMOTE_COMMANDS and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nixlift",
        description="Build NixOS systems here, copy them to hosts over SSH and switch them.",
    )
    parser.add_argument("--version", action="version", version=f"nixlift {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show build and activation output as it happens",
    )
    parser.add_argument(
        "--debug", action="store_true", help="log every command run and show tracebacks"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "deploy",
        help="build, copy and activate (default goal: switch)",
        description="Build every selected machine's system, copy it to the host and activate it.",
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

    p = sub.add_parser(
        "plan",
        help="what a deploy would change on each host, changing nothing",
        description="Evaluate, build what is not built, and say per host what a deploy would "
        "change: the system it runs and the one it would run, package changes (as `nix store "
        "diff-closures`), what the copy would send, closure sizes, whether it activates, keys "
        "to upload; then the fleet's summary. Nothing on any host changes (no lock is taken, "
        "nothing is written there; --dry-activate copies the new system to run the host's own "
        "dry-activate). Exit 1 if a host cannot be reached or read.",
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
        type=int,
        default=None,
        metavar="N",
        help="local builds at once (default: the number of CPUs, at least 2)",
    )
    _output_args(p)

    p = sub.add_parser(
        "apply-local",
        help="deploy the machine named like this host onto it",
        description="Build and activate, on this machine itself and without "
        "SSH, the network's machine named like this host (or "
        "--node NAME); it must set deployment.allowLocalDeployment "
        "(colmena's apply-local). Commands that need root run "
        "through sudo when nixlift does not run as root.",
    )
    _network_args(p)
    p.add_argument("--node", metavar="NAME", help="the machine to deploy (default: hostname)")
    _build_args(p)
    _output_args(p)
    _goal_and_safety_args(p)
    _rollout_args(p)

    p = sub.add_parser(
        "build",
        help="build the selected machines' systems, nothing else",
        description="Build every selected machine's system on this machine.",
    )
    _network_args(p)
    _selection_args(p)
    _build_args(p)
    _rollout_args(p)
    _output_args(p)

    p = sub.add_parser(
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

    p = sub.add_parser(
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
        type=int,
        default=0,
        metavar="N",
        help="hosts asked at once (0: all, the default)",
    )
    _output_args(p)

    p = sub.add_parser(
        "exec",
        help="run a command on the selected hosts at once",
        usage="nixlift exec [NETWORK …] [-d NAME] [--on …] -- COMMAND …",
        description="Run a command on every selected host in parallel, its "
        "output prefixed with the host's name. One argument with "
        "spaces is a shell command line (sh -c).",
    )
    _hosts_args(p, parallel=10)

    p = sub.add_parser(
        "ssh",
        help="an interactive shell on one host, with its SSH settings",
        usage="nixlift ssh MACHINE [NETWORK …] [-d NAME] [-- COMMAND …]",
        description="Open ssh to a machine of the network with the same host, "
        "port, user and options a deploy uses.",
    )
    p.add_argument("host", metavar="MACHINE")
    _network_args(p)
    _connect_timeout(p)

    p = sub.add_parser(
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

    p = sub.add_parser(
        "upload-keys",
        aliases=["send-keys"],
        help="upload keys and secrets without deploying",
        description="Upload each selected machine's deployment.keys (NixOps, "
        "colmena) and deployment.secrets (morph) now, e.g. after a "
        "reboot emptied /run/keys; unchanged ones are left as they "
        "are, ones no longer declared are removed.",
    )
    _hosts_args(p)
    p.add_argument("--lock-wait", type=int, default=0, metavar="SECONDS")
    _output_args(p)

    p = sub.add_parser(
        "rollback",
        help="switch hosts back to an earlier generation",
        description="Switch each selected host's system profile back to the "
        "generation before its current one (or --to N) and activate "
        "it. Read from the hosts themselves: works whatever the "
        "network file says now.",
    )
    _hosts_args(p)
    p.add_argument("--to", type=int, metavar="GEN", help="the generation number to go to")
    p.add_argument("--lock-wait", type=int, default=0, metavar="SECONDS")

    p = sub.add_parser(
        "list-generations",
        help="the system generations on each host",
        description="List each selected host's system generations, marking "
        "the current (boot default) and the running one.",
    )
    _hosts_args(p)
    _output_args(p)

    p = sub.add_parser(
        "history",
        help="the deploy history each host keeps",
        description="Show the deploys recorded on each selected host: when, "
        "who from where, which system, goal, result, git commit.",
    )
    _hosts_args(p)
    p.add_argument("--last", type=int, default=0, metavar="N", help="only the last N records")
    _output_args(p)

    p = sub.add_parser(
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

    p = sub.add_parser(
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

    p = sub.add_parser(
        "list",
        help="list registered deployments",
        description="List the names `nixlift create` registered.",
    )
    _output_args(p)

    p = sub.add_parser(
        "delete",
        help="forget a registered name (hosts are not touched)",
        description="Forget a deployment name. Hosts keep running what they run.",
    )
    p.add_argument("-d", "--deployment", metavar="NAME", required=True)

    p = sub.add_parser(
        "cache",
        help="a binary cache for a fleet (serve a file:// cache over HTTP)",
        description="Helpers for the binary cache of `deploy --cache`.",
    )
    cs = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    q = cs.add_parser(
        "serve",
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
    return parser
