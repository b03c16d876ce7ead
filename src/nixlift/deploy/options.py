"""What a deploy run was asked to do: the goal and every switch of the command line, as data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nixlift.deploy.fanout import Reach
from nixlift.deploy.rollout import FailurePolicy
from nixlift.model import Goal
from nixlift.nix.argv import NixSettings

if TYPE_CHECKING:
    from nixlift.deploy.cache import Cache  # (a deploy with a cache only)


def default_build_parallel() -> int:
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True)
class DeployOptions:
    """Everything a deploy is told by the command line and the network, for the pipeline."""

    goal: Goal = Goal.SWITCH
    settings: NixSettings = field(default_factory=NixSettings)
    #: where GC roots of built systems live while (or after, with --keep-result) deploying
    gc_roots: Path = Path("/tmp")
    #: roots named after machines (kept for the user): one nix call per machine
    keep_roots: bool = False
    #: True forces activation even where deployment.alwaysActivate is false
    force_activate: bool = False
    reach: Reach = field(default_factory=Reach)
    #: hosts copied to / activated at once; 0 = no limit
    parallel: int = 10
    #: local builds running at once (each a nix-store process with nix's own job limit)
    build_parallel: int = field(default_factory=default_build_parallel)
    policy: FailurePolicy = field(default_factory=FailurePolicy)
    #: unreachable hosts are reported as skipped instead of failed
    skip_unreachable: bool = False
    #: seconds to wait for another deployer's lock on a host (0: fail at once)
    lock_wait: int = 0
    #: --no-auto-rollback / --no-magic-rollback for this run
    auto_rollback: bool = True
    magic_rollback: bool = True
    #: the network's git commit, for the history kept on each host
    commit: str | None = None
    #: run deployment.preDeployChecks and healthChecks (--no-checks turns them off)
    health_checks: bool = True
    #: --reboot: activate for boot, reboot, check the host came back on the new system
    reboot: bool = False
    #: --allow-reboot: reboot hosts whose activation says a reboot is required (exit 100)
    allow_reboot: bool = False
    reboot_timeout: int = 300
    #: upload deployment.keys and deployment.secrets (--no-keys turns it off for a run)
    upload_keys: bool = True
    #: --cache: push each system there once, have the hosts fetch it from there
    cache: Cache | None = None
    #: --build-host: build every machine there (deployment.buildHost says it per machine)
    build_host: str | None = None
