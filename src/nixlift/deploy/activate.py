"""Make a host run a system: set the system profile, then switch-to-configuration GOAL."""

from __future__ import annotations

import enum

from nixlift.errors import ActivationError
from nixlift.events import Emit, Output
from nixlift.model import Goal, HostState
from nixlift.transport.ssh import SshSession

# Runs on the host as root (elevated when the SSH user is not root). Arguments arrive as
# positional parameters: $1 system path, $2 goal, $3 1 = set the system profile first.
_ACTIVATE = """
sys=$1 goal=$2 set_profile=$3
if [ ! -x "$sys/bin/switch-to-configuration" ]; then
  echo "nixlift: $sys has no bin/switch-to-configuration; it is not a NixOS system" >&2
  exit 90
fi
if [ "$set_profile" = 1 ]; then
  nix-env -p /nix/var/nix/profiles/system --set "$sys" || exit 91
fi
exec "$sys/bin/switch-to-configuration" "$goal"
"""

NOT_A_SYSTEM = 90
PROFILE_FAILED = 91
#: what switch-to-configuration says when the new system needs a reboot (kernel, initrd, …)
REBOOT_REQUIRED = 100


class Outcome(enum.Enum):
    ACTIVATED = "activated"
    REBOOT_REQUIRED = "reboot-required"


def needs_activation(goal: Goal, system: str, state: HostState, always_activate: bool) -> bool:
    """NixOps' alwaysActivate semantics: with it off, a host already on the system is left be."""
    if always_activate or goal is Goal.DRY_ACTIVATE:
        return True
    if goal is Goal.SWITCH:
        return not (state.current_system == system and state.profile_system == system)
    if goal is Goal.BOOT:
        return state.profile_system != system
    return state.current_system != system


async def activate(session: SshSession, system: str, goal: Goal, emit: Emit) -> Outcome:
    name = session.target.name
    done = await session.run(
        ["sh", "-c", _ACTIVATE, "nixlift-activate", system, goal.value,
         "1" if goal.sets_profile else "0"],
        what=f"switch-to-configuration {goal.value}",
        elevated=True,
        check=False,
        on_stderr=lambda line: emit(Output(name, line)),
    )
    if done.returncode == 0:
        return Outcome.ACTIVATED
    if done.returncode == REBOOT_REQUIRED:
        return Outcome.REBOOT_REQUIRED
    if done.returncode == NOT_A_SYSTEM:
        message = f"{system} on {name} is not a NixOS system (no bin/switch-to-configuration)"
        hint = "the machine's configuration must build a NixOS system.build.toplevel"
    elif done.returncode == PROFILE_FAILED:
        message = f"setting the system profile on {name} failed"
        hint = "the SSH user needs root (deployment.targetUser = \"root\" or passwordless sudo)"
    else:
        message = f"switch-to-configuration {goal.value} on {name} failed with exit status " \
                  f"{done.returncode}"
        hint = "its last output lines (shown with this error) say what failed; the host may " \
               "be partly switched: check it, fix the configuration and deploy again"
    raise ActivationError(message, argv=done.argv, returncode=done.returncode,
                          stderr_tail=done.stderr_tail(), hint=hint, host=name)
