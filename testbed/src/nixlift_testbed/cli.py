"""`nixlift-sandbox up|down|status`: local stand-in hosts to try nixlift on."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from importlib import resources
from pathlib import Path

from nixlift_testbed import hosts


def standin_nixpkgs() -> Path:
    return Path(str(resources.files("nixlift_testbed").joinpath("nixpkgs")))


def _directory(args: argparse.Namespace) -> Path:
    return Path(args.dir).resolve() if args.dir else hosts.default_directory()


async def run(args: argparse.Namespace) -> int:
    directory = _directory(args)
    if args.sandbox_command == "up":
        sandbox = await hosts.up(directory, args.count, port=args.port)
        network = write_network(directory, [h.name for h in sandbox.hosts], sandbox.ssh_config,
                                public_key=sandbox.public_key)
        for h in sandbox.hosts:
            print(f"{h.name}  {h.address}:{h.port}  pid {h.pid}", file=sys.stderr)
        print(f"ssh config: {sandbox.ssh_config}  (try: ssh -F {sandbox.ssh_config} "
              f"{sandbox.hosts[0].name} hostname)", file=sys.stderr)
        print(f"demo network: {network}  (try: nixlift deploy {network})", file=sys.stderr)
        print(network)
        return 0
    if args.sandbox_command == "down":
        await hosts.down(directory, purge=args.purge)
        print(f"sandbox hosts in {directory} stopped", file=sys.stderr)
        return 0
    rows = await hosts.status(directory)
    if args.json:
        json.dump([{"name": r.name, "address": r.address, "port": r.port, "pid": r.pid,
                    "running": r.running, "currentSystem": r.current_system} for r in rows],
                  sys.stdout, indent=2)
        print()
    else:
        for r in rows:
            state = "running" if r.running else "stopped"
            print(f"{r.name}  {r.address}:{r.port}  {state}  {r.current_system or '-'}")
    return 0 if all(r.running for r in rows) else 1


def write_network(directory: Path, names: list[str], ssh_config: Path,
                  public_key: str | None = None) -> Path:
    """The demo network file plus the JSON it reads (data stays data: no Nix text is built)."""
    (directory / "sandbox.json").write_text(json.dumps({
        "hosts": names,
        "sshConfig": str(ssh_config),
        "nixpkgs": str(standin_nixpkgs()),
        **({"publicKey": public_key} if public_key else {}),
    }, indent=2) + "\n")
    target = directory / "network.nix"
    shutil.copyfile(str(resources.files("nixlift_testbed").joinpath("network.nix")), target)
    return target
