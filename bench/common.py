"""Shared code of the benchmarks: sandbox lifecycle, network files, timing, medians, tables.

Every benchmark runs as `.venv/bin/python bench/NAME.py [--quick]`. It starts its own sandbox
hosts in a temporary directory (`Lab`), which is torn down on every exit path: normal end,
exception, Ctrl-C and SIGTERM/SIGHUP.

Networks reach the sandbox hosts the way the integration tests do (`tests/integration/netkit.py`):
the network file is constant text, and every value (ssh config, stand-in nixpkgs, per-host data)
travels in a JSON file beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from nixlift_testbed import Sandbox, down, up
from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy
from nixlift_testbed.proxy import deployment as proxy_deployment
from nixlift_testbed.render import host_key_alias

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
STANDIN = Path(str(resources.files("nixlift_testbed").joinpath("nixpkgs")))
_ENTRY = ROOT / ".venv" / "bin" / "nixlift"
#: how the benchmarks start nixlift: the installed entry point, as a user types `nixlift`
NIXLIFT: tuple[str, ...] = (str(_ENTRY),) if _ENTRY.exists() else (sys.executable, "-m", "nixlift")
#: environment of every command: the stand-in systems exist in no binary cache. nixlift runs as
#: an installed tool does, with its modules' bytecode cached (pip compiles it at install): a dev
#: shell's PYTHONDONTWRITEBYTECODE=1 would make every start compile nixlift from source, so the
#: Lab points PYTHONPYCACHEPREFIX at a directory of its own instead (see no_bytecode_env).
ENV: dict[str, str] = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "NIX_CONFIG": os.environ.get("NIX_CONFIG", "") + "\nsubstituters =\n",
}


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(description: str, *, rtt: bool = False) -> argparse.Namespace:
    """--quick, --reps N; with `rtt`, --rtt MS too (0: none)."""
    parser = argparse.ArgumentParser(description=description)
    if rtt:
        parser.add_argument(
            "--rtt",
            type=float,
            default=0.0,
            metavar="MS",
            help="every host behind a delay proxy of its own with this round-trip time",
        )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions and smaller counts (the whole set in ~2 minutes)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        metavar="N",
        help="repetitions per case (overrides the default and --quick)",
    )
    return parser.parse_args()


def reps(args: argparse.Namespace, default: int, quick: int) -> int:
    if args.reps is not None:
        return max(1, int(args.reps))
    return quick if args.quick else default


def say(text: str) -> None:
    """Progress on stderr (the table and ratios go to stdout)."""
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Sandbox hosts


class _Interrupted(KeyboardInterrupt):
    pass


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(f"signal {signum}")


class Lab:
    """A temporary directory holding sandboxes and networks; `with Lab() as lab:` stops every
    sandbox started in it (and every proxy or server entered with `lab.enter`) and removes the
    directory, whatever ends the block."""

    def __init__(self) -> None:
        # short and without spaces: NIX_SSHOPTS is split at whitespace, socket paths are short
        self.root = Path(tempfile.mkdtemp(prefix="nlbench-", dir="/tmp"))
        self._sandboxes: list[Path] = []
        self._count = 0
        self._stack = ExitStack()

    def __enter__(self) -> Lab:
        ENV["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _raise_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        # a second Ctrl-C during teardown should not leave hosts behind
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.close()
        finally:
            signal.signal(signal.SIGINT, old)

    def close(self) -> None:
        try:
            self._stack.close()  # proxies and servers first: they may serve the sandboxes
        finally:
            for directory in reversed(self._sandboxes):
                self.stop(directory)
            shutil.rmtree(self.root, ignore_errors=True)

    def enter(self, manager: AbstractContextManager[T]) -> T:
        """Enter a context manager (a proxy in a thread, a server) until the Lab closes."""
        return self._stack.enter_context(manager)

    def sandbox(self, count: int, *, shaped: str | None = None) -> Sandbox:
        """A new sandbox of hosts h1…hCOUNT (fresh stores) in its own directory; `shaped`: behind
        a link of that rate (nixlift_testbed.link)."""
        self._count += 1
        directory = self.root / f"sb{self._count}"
        self._sandboxes.append(directory)  # before `up`: a half-started sandbox is stopped too
        begun = time.perf_counter()
        sandbox = asyncio.run(up(directory, count, shaped=shaped))
        link = f" behind a {shaped} link" if shaped else ""
        say(
            f"  sandbox {directory.name}: {count} host(s){link} up in "
            f"{time.perf_counter() - begun:.1f} s"
        )
        return sandbox

    def stop(self, directory: Path) -> None:
        if directory not in self._sandboxes:
            return
        try:
            asyncio.run(down(directory, purge=True))
        except Exception as e:  # stop the others anyway
            say(f"  warning: stopping the sandbox in {directory} failed: {e}")
        self._sandboxes.remove(directory)

    def directory(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# ---------------------------------------------------------------------------------------------
# Networks


@dataclass(frozen=True)
class HostSpec:
    """What a benchmark machine's system holds, besides the stand-in NixOS base."""

    #: text of /etc/bench/role; different texts make different systems
    role: str
    #: store paths of this host's own (writeText), all referenced from /etc/bench/manifest
    small_paths: int = 0
    #: size in MiB of one shared path (the same derivation for every host), 0 = none
    blob_mib: int = 0
    #: the shared path's bytes are random (incompressible, as most of a real closure is to a
    #: fast compressor) instead of one repeated letter
    blob_random: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "smallPaths": self.small_paths,
            "blobMiB": self.blob_mib,
            "blobRandom": self.blob_random,
        }


# A machine as a function of its name and spec. Constant text: values come from bench.json.
_MACHINE_NIX = r"""# A benchmark machine: (import ./machine.nix) NAME SPEC is a NixOS module.
name: spec: { config, pkgs, lib, ... }:
let
  small = builtins.genList
    (i: pkgs.writeText "bench-${name}-${toString i}" "${name} file ${toString i}\n")
    spec.smallPaths;
  # One path shared by every host: its derivation does not depend on the host. Random bytes
  # are whatever its one build drew: the path is built once and then found in the store.
  random = spec.blobRandom or false;
  blob = pkgs.runCommand
    "bench-blob-${if random then "random-" else ""}${toString spec.blobMiB}MiB" { }
    (if random then ''
      $bb mkdir -p "$out"
      $bb head -c ${toString spec.blobMiB}M /dev/urandom > "$out/blob"
    '' else ''
      $bb mkdir -p "$out"
      $bb head -c ${toString spec.blobMiB}M /dev/zero | $bb tr '\000' 'n' > "$out/blob"
    '');
in
{
  environment.etc = { "bench/role".text = spec.role; }
    // (if small == [ ] then { } else {
      "bench/manifest".text = builtins.concatStringsSep "\n" (map toString small) + "\n";
    })
    // (if spec.blobMiB == 0 then { } else { "bench/blob".source = "${blob}/blob"; });
}
"""

_NETWORK_NIX = r"""# A nixlift benchmark network: machines and their specs come from ./bench.json.
let
  bench = builtins.fromJSON (builtins.readFile ./bench.json);
  machine = import ./machine.nix;
in
{
  network.description = "nixlift benchmark";
  network.nixpkgs = bench.nixpkgs;
  defaults = { deployment = { sshOptions = [ "-F" bench.sshConfig ]; } // bench.deployment; };
}
// builtins.mapAttrs (name: spec: { ... }: {
  imports = [ (machine name spec) ];
  deployment = (bench.hostDeployment or { }).${name} or { };
}) bench.hosts
"""

# The same machine as a person would build it by hand, without nixlift:
#   nix-instantiate -I nixpkgs=STANDIN toplevel.nix --argstr name h1
_TOPLEVEL_NIX = r"""# One machine's system, by hand: nix-instantiate toplevel.nix --argstr name h1
{ name }:
let
  bench = builtins.fromJSON (builtins.readFile ./bench.json);
  nixos = import <nixpkgs/nixos/lib/eval-config.nix> {
    modules = [ (import ./machine.nix name bench.hosts.${name}) { networking.hostName = name; } ];
  };
in
nixos.config.system.build.toplevel
"""


@dataclass(frozen=True)
class Network:
    directory: Path
    file: Path
    #: for the hand-run evaluation: nix-instantiate -I nixpkgs=STANDIN TOPLEVEL --argstr name H
    toplevel: Path
    names: tuple[str, ...]


def write_network(
    directory: Path,
    sandbox: Sandbox | None,
    hosts: Mapping[str, HostSpec],
    deployment: Mapping[str, object] | None = None,
    host_deployment: Mapping[str, Mapping[str, object]] | None = None,
) -> Network:
    """network.nix (+ machine.nix, toplevel.nix, bench.json) in `directory`; `deployment`:
    deployment.* options for every machine (nixlift's defaults if None); `host_deployment`:
    more of them, by machine."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.json").write_text(
        json.dumps(
            {
                "sshConfig": str(sandbox.ssh_config) if sandbox else "/dev/null",
                "nixpkgs": str(STANDIN),
                "hosts": {name: spec.to_json() for name, spec in hosts.items()},
                "deployment": dict(deployment or {}),
                "hostDeployment": {h: dict(d) for h, d in (host_deployment or {}).items()},
            },
            indent=1,
        )
    )
    (directory / "machine.nix").write_text(_MACHINE_NIX)
    (directory / "network.nix").write_text(_NETWORK_NIX)
    (directory / "toplevel.nix").write_text(_TOPLEVEL_NIX)
    return Network(directory, directory / "network.nix", directory / "toplevel.nix", tuple(hosts))


class Proxied:
    """A sandbox's hosts each behind a delay proxy of their own (nixlift_testbed.proxy), until
    `close`: the deployment options that reach them, and an ssh config for hand-run commands
    (the proxies' addresses and ports, the hosts' own known_hosts names, the sandbox's config for
    the rest)."""

    def __init__(self, lab: Lab, sandbox: Sandbox, rtt: float) -> None:
        self.scope = lab.enter(ExitStack())
        self.deployment: dict[str, dict[str, object]] = {}
        blocks = []
        for h in sandbox.hosts:
            proxy = self.scope.enter_context(in_thread(DelayProxy((h.address, h.port), rtt=rtt)))
            address, port = proxy.address
            self.deployment[h.name] = proxy_deployment(sandbox, h.name, (address, port))
            blocks.append(
                f"Host {h.name}\n  HostName {address}\n  Port {port}\n"
                f"  HostKeyAlias {host_key_alias(h.address, h.port)}\n"
            )
        # values met first win: the sandbox's own config (user, key, known_hosts) comes last
        blocks.append(f"Host *\n  Include {sandbox.ssh_config}\n")
        self.ssh_config = sandbox.directory / "proxied_ssh_config"
        self.ssh_config.write_text("".join(blocks))

    def close(self) -> None:
        self.scope.close()


def host_names(count: int) -> list[str]:
    return [f"h{i}" for i in range(1, count + 1)]


# ---------------------------------------------------------------------------------------------
# Deploying by hand (the baseline)

#: copy and activate one host, as a person types it: bash deploy-one.sh CFG HOST SYSTEM
DEPLOY_ONE_SH = r"""#!/bin/bash
# Deploy one built system to one host by hand: copy the closure, set the profile, switch.
set -euo pipefail
cfg=$1 host=$2 sys=$3
NIX_SSHOPTS="-F $cfg" nix-copy-closure --to "$host" "$sys"
ssh -F "$cfg" "$host" \
  "nix-env -p /nix/var/nix/profiles/system --set $sys && $sys/bin/switch-to-configuration switch"
"""


def hand_deploy(
    lab: Lab,
    sandbox: Sandbox,
    systems: Mapping[str, str],
    parallel: int | None,
    *,
    ssh_config: Path | None = None,
) -> float:
    """Seconds to deploy `systems` (host → built system) by hand: deploy-one.sh host after host
    (parallel None, a shell loop) or `xargs -P PARALLEL` over the hosts; `ssh_config` instead
    of the sandbox's (hosts reached through proxies)."""
    script = lab.root / "deploy-one.sh"
    if not script.exists():
        script.write_text(DEPLOY_ONE_SH)
    lines = "".join(f"{host} {system}\n" for host, system in systems.items())
    cfg = str(ssh_config or sandbox.ssh_config)
    if parallel is None:
        loop = 'while read -r host sys; do bash "$0" "$1" "$host" "$sys" </dev/null; done'
        return timed(["bash", "-c", loop, str(script), cfg], stdin=lines)
    return timed(["xargs", "-P", str(parallel), "-n", "2", "bash", str(script), cfg], stdin=lines)


# ---------------------------------------------------------------------------------------------
# Running and timing commands


class CommandFailed(RuntimeError):
    pass


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> str:
    """Run a command to completion; its stdout, or CommandFailed with its output's tail."""
    done = subprocess.run(
        [str(a) for a in argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env or ENV),
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise CommandFailed(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{tail}")
    return done.stdout


def timed(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> float:
    """Seconds (wall clock, time.perf_counter) the command takes; output goes to a file that is
    only read when the command fails (so neither side pays for a pipe reader)."""
    with tempfile.TemporaryFile("w+") as out:
        begun = time.perf_counter()
        done = subprocess.run(
            [str(a) for a in argv],
            input=stdin,
            stdout=out,
            stderr=out,
            text=True,
            env=dict(env or ENV),
            cwd=cwd,
            check=False,
        )
        elapsed = time.perf_counter() - begun
        if done.returncode != 0:
            out.seek(0)
            tail = "\n".join(out.read().splitlines()[-25:])
            raise CommandFailed(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{tail}")
    return elapsed


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy so far (every process: the deployer, the
    sandbox hosts' sshd and activations), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Wraps cases to also record the whole machine's busy CPU seconds while each ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    def wrap(self, cases: Mapping[str, Callable[[], float]]) -> dict[str, Callable[[], float]]:
        def measured(name: str, case: Callable[[], float]) -> Callable[[], float]:
            def run_case() -> float:
                before = machine_cpu_seconds()
                wall = case()
                self.seconds.setdefault(name, []).append(machine_cpu_seconds() - before)
                return wall

            return run_case

        return {name: measured(name, case) for name, case in cases.items()}


def timed_json(
    argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None
) -> tuple[float, dict[str, Any]]:
    """Seconds the command takes, and the JSON document it prints on stdout (nixlift --json)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        begun = time.perf_counter()
        done = subprocess.run(
            [str(a) for a in argv], stdout=out, stderr=err, text=True, env=dict(env or ENV)
        )
        elapsed = time.perf_counter() - begun
        out.seek(0)
        err.seek(0)
        if done.returncode != 0:
            tail = "\n".join((out.read() + err.read()).splitlines()[-25:])
            raise CommandFailed(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{tail}")
        doc: dict[str, Any] = json.loads(out.read())
    return elapsed, doc


#: seconds between two reads of a process's VmHWM
POLL = 0.02


@dataclass(frozen=True)
class Peak:
    mb: float
    seconds: float
    polls: int
    returncode: int
    #: the last line nixlift wrote on stderr when it failed
    error: str


def peak_rss(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> Peak:
    """Wall time and VmHWM (the kernel's high-water mark of its own resident set; children,
    nix and ssh, are not counted) of the process started with argv, polled every POLL seconds
    until it exits."""
    with tempfile.TemporaryFile("w+") as err:
        begun = time.perf_counter()
        child = subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=dict(env or ENV),
            text=True,
        )
        status = Path(f"/proc/{child.pid}/status")
        hwm_kib = 0
        polls = 0
        while True:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm_kib = max(hwm_kib, int(line.split()[1]))
                        break
            except (OSError, ValueError):
                pass  # exited between two polls: the last value read stands
            polls += 1
            if child.poll() is not None:
                break
            time.sleep(POLL)
        elapsed = time.perf_counter() - begun
        error = ""
        if child.returncode != 0:
            err.seek(0)
            error = gist(err.read())
    return Peak(hwm_kib / 1024, elapsed, polls, child.returncode, error)


def no_bytecode_env() -> dict[str, str]:
    """ENV, but nixlift compiles its modules from source at every start (no .pyc written or
    read for them), as with PYTHONDONTWRITEBYTECODE=1 and an editable install. The bytecode
    cache is a directory that stays empty: without one, Python would read the .pyc files that
    a run without PYTHONDONTWRITEBYTECODE left in src/nixlift/__pycache__."""
    env = dict(ENV)
    cache = env.get("PYTHONPYCACHEPREFIX")
    if cache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(Path(cache).with_name("pycache-never-written"))
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def attempt(
    argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None
) -> tuple[float, str | None]:
    """(seconds, None) if the command succeeds, (seconds, the gist of its failure) if not."""
    begun = time.perf_counter()
    try:
        return timed(argv, env=env), None
    except CommandFailed as e:
        return time.perf_counter() - begun, first_line(e)


def nixlift(*args: str | Path) -> list[str]:
    return [*NIXLIFT, *map(str, args)]


def deploy_json(network: Network, *extra: str) -> dict[str, dict[str, object]]:
    """`nixlift deploy NET --json`: per-host results by name; fails unless every host succeeded."""
    doc = json.loads(run(nixlift("deploy", network.file, "--json", *extra)))
    hosts: dict[str, dict[str, object]] = {h["name"]: h for h in doc["hosts"]}
    bad = [n for n, h in hosts.items() if not h.get("succeeded")]
    if bad:
        raise CommandFailed(f"nixlift deploy failed on {', '.join(bad)}")
    return hosts


def batches(names: Sequence[str], size: int) -> list[list[str]]:
    return [list(names[i : i + size]) for i in range(0, len(names), size)]


def on(names: Sequence[str]) -> list[str]:
    """`--on h1,h2,…`: select these machines."""
    return ["--on", ",".join(names)]


def deploy_in_batches(network: Network, size: int = 50) -> None:
    """First deploy `size` machines at a time (`--on`), so that setting up a large network does
    not depend on nixlift handling every machine in one run (in November 2026 it could not
    evaluate ~93 or more at once: docs/benchmarks.md)."""
    for names in batches(network.names, size):
        deploy_json(network, *on(names))


def gist(text: str) -> str:
    """The gist of a failed command's output: nixlift's `error:` line(s), else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return errors[0] + more
    return lines[-1] if lines else "no output"


def first_line(error: Exception) -> str:
    """The gist of a failure (see gist)."""
    return gist(str(error))


def build_systems(network: Network, *extra: str) -> dict[str, str]:
    """`nixlift build NET --json`: each host's system path."""
    doc = json.loads(run(nixlift("build", network.file, "--json", *extra)))
    return {h["name"]: h["system"] for h in doc["hosts"]}


def build_in_batches(network: Network, size: int = 50) -> dict[str, str]:
    systems: dict[str, str] = {}
    for names in batches(network.names, size):
        systems.update(build_systems(network, *on(names)))
    return systems


def interleaved(
    rounds: int,
    cases: Mapping[str, Callable[[], float]],
    before_each: Callable[[str, int], None] | None = None,
) -> dict[str, list[float]]:
    """Run every case once per round, rotating the order each round (so no case always runs
    right after the same other one); seconds per case, in round order."""
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if before_each is not None:
                before_each(name, r)
            seconds = cases[name]()
            times[name].append(seconds)
            say(f"  round {r + 1}/{rounds} {name}: {seconds:.3f} s")
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.3f}..{max(values):.3f}"


# ---------------------------------------------------------------------------------------------
# Output


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A small aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def code_version() -> str:
    """The nixlift code measured: HEAD, and whether the work tree has changes (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else "")


def header(title: str, args: argparse.Namespace, note: str = "") -> None:
    mode = "quick" if args.quick else "full"
    print(
        f"== {title} ({mode}; {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"nixlift {code_version()})"
    )
    if note:
        print(note)


@contextmanager
def stage(what: str) -> Iterator[None]:
    say(f"{what} …")
    begun = time.perf_counter()
    yield
    say(f"{what}: {time.perf_counter() - begun:.1f} s")


def main_guard(body: Callable[[], int]) -> None:
    """Run a benchmark's body: exit 0 on success, 130 on interrupt, 1 with a message otherwise."""
    try:
        code = body()
    except KeyboardInterrupt:
        say("interrupted; sandbox hosts stopped")
        sys.exit(130)
    except CommandFailed as e:
        say(f"benchmark failed: {e}")
        sys.exit(1)
    sys.exit(code)
