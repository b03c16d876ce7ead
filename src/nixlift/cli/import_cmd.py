"""`nixlift import-nixops`: NixOps' deployments (from its state file, left as it is) registered
under their names, so `nixlift deploy -d NAME` works; what cannot be carried over is said."""

from __future__ import annotations

import sys

from nixlift import registry as reg
from nixlift.cli.options import Invocation
from nixlift.errors import UsageError
from nixlift.nix import nixops_state


async def cmd_import_nixops(inv: Invocation) -> int:
    path = inv.state_file or nixops_state.default_path()
    deployments = nixops_state.read(path)
    wanted = set(inv.deployments)
    if wanted:
        known = {d.uuid for d in deployments} | {d.name for d in deployments if d.name}
        unknown = sorted(wanted - known)
        if unknown:
            raise UsageError(
                f"{path} has no deployment {', '.join(unknown)}",
                hint=f"its deployments: {', '.join(d.label for d in deployments) or 'none'}",
            )
        deployments = [d for d in deployments if d.uuid in wanted or d.name in wanted]
    registry = reg.Registry()
    taken = {e.name for e in registry.entries()}
    imported = 0
    for d in deployments:
        name = d.label
        for line in nixops_state.not_carried(d):
            print(f"nixlift: {name}: not carried over: {line}", file=sys.stderr)
        if not d.network_files:
            continue
        if name in taken and not inv.replace:
            print(
                f"nixlift: {name}: a deployment of that name is registered already; left as "
                "it is (--replace replaces it)",
                file=sys.stderr,
            )
            continue
        registry.put(
            reg.Entry(
                name=name,
                files=d.network_files,
                args=d.args,
                include=d.nix_path,
            )
        )
        imported += 1
        args = f", arguments {', '.join(k for k, _ in d.args)}" if d.args else ""
        print(
            f"imported '{name}': {' '.join(d.network_files)}{args}",
            file=sys.stderr,
        )
        print(name)
    print(
        f"nixlift: {imported} of {len(deployments)} deployment"
        f"{'s' if len(deployments) != 1 else ''} imported from {path} (left unchanged)",
        file=sys.stderr,
    )
    return 0
