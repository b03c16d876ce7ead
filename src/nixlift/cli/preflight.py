"""What a deploy and a plan check of the evaluated network before any host is reached: machines
nixlift would have to create are refused, every machine's keys and secrets are read."""

from __future__ import annotations

import sys
from pathlib import Path

from nixlift.cli.evaluated import uploads_keys
from nixlift.cli.options import Invocation
from nixlift.deploy import keys
from nixlift.errors import UsageError
from nixlift.model import Network


def refuse_other_backends(network: Network) -> None:
    """NixOps' targetEnv other than "none" would create machines: nixlift deploys to existing
    ones only, and says so before anything starts."""
    for m in network.machines:
        if m.deployment.target_env != "none":
            raise UsageError(
                f"machine '{m.name}' has deployment.targetEnv = {m.deployment.target_env!r}: "
                "nixlift does not create machines",
                host=m.name,
                hint='deploy to the machine once it exists: deployment.targetEnv = "none" '
                "and its address in deployment.targetHost",
            )


def declared_keys(inv: Invocation, network: Network) -> dict[str, list[keys.Key]]:
    """Every machine's keys and secrets, checked before any host is touched."""
    base = network.files[0].resolve().parent if network.files else Path.cwd()
    found = {m.name: keys.declared(m, base) for m in network.machines}
    count = sum(len(k) for k in found.values())
    if count and not inv.upload_keys and inv.goal.activates:
        print(
            f"nixlift: --no-keys: {count} key{'s' if count != 1 else ''} and secrets declared "
            "by the selected machines are not uploaded",
            file=sys.stderr,
        )
    return found if uploads_keys(inv) else {}
