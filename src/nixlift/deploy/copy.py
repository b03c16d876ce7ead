"""Copy a closure to a host over the host's existing SSH connection."""

from __future__ import annotations

from nixlift import proc
from nixlift.errors import CopyError
from nixlift.events import Emit
from nixlift.nix import argv as nix_argv
from nixlift.nix.logparse import NixLog, relay
from nixlift.transport.ssh import SshTarget


async def copy(target: SshTarget, path: str, *, use_substitutes: bool, emit: Emit) -> None:
    log = NixLog()
    done = await proc.run(
        [*nix_argv.copy_closure(target.destination, [path], use_substitutes=use_substitutes),
         *nix_argv.LOG_JSON],
        env={"NIX_SSHOPTS": target.nix_sshopts()},
        check=False,
        host=target.name,
        on_stderr=relay(target.name, "copy", log, emit),
    )
    if done.returncode != 0:
        raise CopyError(
            f"copying to {target.name} failed (nix-copy-closure exit status {done.returncode})",
            argv=done.argv,
            returncode=done.returncode,
            stderr_tail="\n".join(list(log.lines)[-25:]),
            host=target.name,
            hint="check free space on the host (df /nix) and that the SSH user may write its "
                 "Nix store (root, or a trusted user)",
        )
