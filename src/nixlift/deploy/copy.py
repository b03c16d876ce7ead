"""Copy a closure to a host over the host's existing SSH connection."""

from __future__ import annotations

from nixlift.errors import CopyError
from nixlift.events import Emit
from nixlift.nix import argv as nix_argv
from nixlift.nix.logparse import run_logged
from nixlift.transport.ssh import SshTarget


async def copy(target: SshTarget, path: str, *, use_substitutes: bool, emit: Emit) -> None:
    await run_logged(
        nix_argv.copy_closure(target.destination, [path], use_substitutes=use_substitutes),
        env={"NIX_SSHOPTS": target.nix_sshopts()}, host=target.name, phase="copy", emit=emit,
        error=CopyError, what=f"copying to {target.name}",
        hint="check free space on the host (df /nix) and that the SSH user may write its Nix "
             "store (root, or a trusted user)")
