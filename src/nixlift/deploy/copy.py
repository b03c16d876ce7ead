"""Copy a closure to a host over the host's existing SSH connection."""

from __future__ import annotations

from nixlift import proc
from nixlift.errors import CopyError
from nixlift.events import Emit, Output
from nixlift.nix import argv as nix_argv
from nixlift.transport.ssh import SshTarget


async def copy(target: SshTarget, path: str, *, use_substitutes: bool, emit: Emit) -> None:
    await proc.run(
        nix_argv.copy_closure(target.destination, [path], use_substitutes=use_substitutes),
        env={"NIX_SSHOPTS": target.nix_sshopts()},
        what=f"copying to {target.name}",
        error=CopyError,
        host=target.name,
        hint="check free space on the host (df /nix) and that the SSH user may write its Nix "
             "store (root, or a trusted user)",
        on_stderr=lambda line: emit(Output(target.name, line)),
    )
