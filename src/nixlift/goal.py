"""What a deploy does with each host (its own module: the command line needs it before the rest
of the model, which a deploy imports once its evaluation has started)."""

from __future__ import annotations

import enum


class Goal(enum.StrEnum):
    """What a deploy does with each host, in the order the phases run."""

    BUILD = "build"  # stop after building
    PUSH = "push"  # stop after copying
    DRY_ACTIVATE = "dry-activate"  # show what activation would change
    TEST = "test"  # activate now, keep the boot default
    BOOT = "boot"  # make it the boot default, do not activate now
    SWITCH = "switch"  # both

    @property
    def copies(self) -> bool:
        return self is not Goal.BUILD

    @property
    def activates(self) -> bool:
        return self not in (Goal.BUILD, Goal.PUSH)

    @property
    def sets_profile(self) -> bool:
        return self in (Goal.SWITCH, Goal.BOOT)
