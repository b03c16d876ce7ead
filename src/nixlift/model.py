"""The values that flow through nixlift: a network, its machines, goals and results. All frozen."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nixlift.goal import Goal as Goal  # (the model's, declared apart: see goal.py)


class Stage(enum.StrEnum):
    """What a host is doing; the names the live view, plain lines and durations show."""

    CONNECT = "connect"
    BUILD = "build"
    PROBE = "probe"
    COPY = "copy"
    CHECK = "check"
    ACTIVATE = "activate"
    CONFIRM = "confirm"
    UNCHANGED = "unchanged"
    REBOOT = "reboot"
    ROLLBACK = "rollback"
    WAIT = "wait"
    EXEC = "exec"
    KEYS = "keys"
    PROFILES = "profiles"


@dataclass(frozen=True)
class Secret:
    """Key material held in memory only: never shown by repr, never written to a log."""

    value: bytes = field(repr=False)


@dataclass(frozen=True)
class DeploymentOptions:
    """The deployment.* options of one machine that nixlift acts on."""

    #: None: the machine is only ever deployed on itself (colmena's targetHost = null)
    target_host: str | None
    target_port: int | None = None
    target_user: str | None = "root"
    ssh_options: tuple[str, ...] = ()
    privilege_escalation: tuple[str, ...] = ("sudo", "-H", "--")
    tags: tuple[str, ...] = ()
    always_activate: bool = True
    has_fast_connection: bool = False
    substitute_on_destination: bool | None = None
    build_on_target: bool = False
    target_env: str = "none"
    auto_rollback: bool = True
    magic_rollback: bool = True
    confirm_timeout: int = 30
    activation_timeout: int = 240
    allow_local_deployment: bool = False
    #: false: never replace a system profile nixlift did not set (colmena)
    replace_unknown_profiles: bool = True
    #: ssh compression (for slow links)
    compress: bool = False
    #: where its system is built, when not here: `[user@]host` (nixos-rebuild's --build-host)
    build_host: str | None = None
    #: deploy-rs' interactiveSudo: ask for the sudo password (as --ask-sudo-password does)
    interactive_sudo: bool = False
    #: everything deployment.* held, as evaluated (secret material removed), for display
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def use_substitutes(self) -> bool:
        if self.substitute_on_destination is not None:
            return self.substitute_on_destination
        return not self.has_fast_connection

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploymentOptions:
        return cls(
            target_host=None if data.get("targetHost") is None else str(data["targetHost"]),
            target_port=data.get("targetPort"),
            target_user=data.get("targetUser", "root"),
            ssh_options=tuple(data.get("sshOptions", ())),
            privilege_escalation=tuple(
                data.get("privilegeEscalationCommand", ("sudo", "-H", "--"))
            ),
            tags=tuple(data.get("tags", ())),
            always_activate=bool(data.get("alwaysActivate", True)),
            has_fast_connection=bool(data.get("hasFastConnection", False)),
            substitute_on_destination=data.get("substituteOnDestination"),
            build_on_target=bool(data.get("buildOnTarget", False)),
            target_env=str(data.get("targetEnv", "none")),
            auto_rollback=bool(data.get("autoRollback", True)),
            magic_rollback=bool(data.get("magicRollback", True)),
            confirm_timeout=int(data.get("confirmTimeout", 30)),
            activation_timeout=int(data.get("activationTimeout", 240)),
            allow_local_deployment=bool(data.get("allowLocalDeployment", False)),
            replace_unknown_profiles=bool(data.get("replaceUnknownProfiles", True)),
            compress=bool(data.get("compress", False)),
            build_host=data.get("buildHost"),
            interactive_sudo=bool(data.get("interactiveSudo", False)),
            raw=data,
        )


@dataclass(frozen=True)
class Profile:
    """A deploy-rs profile besides the system: installed as its user's profile on the host and
    activated with its own `deploy-rs-activate`, after the system."""

    name: str
    #: the built profile (deploy-rs' lib.activate.*: the base plus deploy-rs-activate)
    path: str
    drv_path: str
    user: str
    #: where the profile lives on the host; None: deploy-rs' default for the user
    profile_path: str | None = None
    auto_rollback: bool = True
    activation_timeout: int = 240

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            name=str(data["name"]),
            path=str(data["path"]),
            drv_path=str(data["drvPath"]),
            user=str(data["user"]),
            profile_path=None if data.get("profilePath") is None else str(data["profilePath"]),
            auto_rollback=bool(data.get("autoRollback", True)),
            activation_timeout=int(data.get("activationTimeout", 240)),
        )


@dataclass(frozen=True)
class Machine:
    """One machine of a network, evaluated: what it should run and how to reach it."""

    name: str
    #: the system its toplevel derivation is built for (where it can be built)
    system: str
    #: the platform the machine runs (differs from `system` only when cross-compiling)
    host_platform: str
    deployment: DeploymentOptions
    drv_path: str
    out_path: str
    #: deployment.keys.<name>.text, when evaluated for an upload (never shown, never compared)
    key_texts: Mapping[str, Secret] = field(default_factory=dict, compare=False, repr=False)
    #: deploy-rs: the node's profiles besides the system, in the order they are activated
    profiles: tuple[Profile, ...] = ()
    #: how the system is switched to: "switch-to-configuration", or "deploy-rs" (the profile's
    #: own deploy-rs-activate, inside nixlift's activation and its safety)
    activation: str = "switch-to-configuration"


@dataclass(frozen=True)
class Network:
    """An evaluated network: the selected machines, in the order the file lists them."""

    deployment_name: str
    description: str
    files: tuple[Path, ...]
    machines: tuple[Machine, ...]
    #: every machine name in the network, selected or not
    all_names: tuple[str, ...]
    #: network.nixConfig (morph): passed to nix as --option
    nix_config: tuple[tuple[str, str], ...] = ()
    #: the system of the machine that evaluated the network (builtins.currentSystem)
    local_system: str = ""
    #: network.cache / meta.cache as written: a store URL, or {store, secretKeyFile, url}
    cache: str | dict[str, Any] | None = None
    #: what was evaluated, for people: the files, or the flake and the output read
    source: str = ""
    #: the flake output read (None: network files)
    output: str | None = None
    #: options the network declares that nixlift accepts and does not act on, to say once
    notices: tuple[str, ...] = ()
    #: what nix said while it evaluated (the configuration's traces and warnings), for people
    messages: tuple[str, ...] = ()
    #: colmena's meta.machinesFile: nix's remote builders (`--builders @FILE`)
    machines_file: str | None = None
    #: colmena's meta.allowApplyAll: false refuses a deploy that names no machines
    allow_apply_all: bool = True
    #: morph's network.ordering.tags: the hosts of each tag deploy before the next tag's
    ordering: tuple[str, ...] = ()

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name:
                return m
        raise KeyError(name)


@dataclass(frozen=True)
class HostState:
    """What a host runs now, read from the host itself."""

    current_system: str | None
    profile_system: str | None
    boot_id: str | None = None


class Status(enum.StrEnum):
    OK = "ok"  # reached the goal
    UNCHANGED = "unchanged"  # already ran the system; nothing was activated
    REBOOT_REQUIRED = "reboot-required"  # activated; switch-to-configuration asked for a reboot
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"  # failed, and the host went back to its previous system
    SKIPPED = "skipped"  # never started (another host's failure, interruption)


@dataclass(frozen=True)
class HostResult:
    """How one host's deploy ended, with what it did (the summary, --json and the history)."""

    name: str
    status: Status
    system: str | None = None
    error: str | None = None
    hint: str | None = None
    #: seconds per stage, in the order they ran
    durations: tuple[tuple[Stage, float], ...] = ()
    copied: bool = False
    activated: bool = False
    #: the failing command's last output lines
    detail: str | None = None
    #: what kind of failure (an error class's `kind`), for machines
    error_kind: str | None = None
    #: names of the keys and secrets written to the host, and of those already in place
    keys_written: tuple[str, ...] = ()
    keys_unchanged: tuple[str, ...] = ()
    #: how many tries the copy took (more than one: its connection was cut and it went on)
    copy_tries: int = 0
    #: the NAR bytes of the paths the copy sent (its last try's), when known
    copied_bytes: int | None = None
    #: with --cache: "fetched" (from the cache), or why the host was copied to instead
    cache: str | None = None
    #: with a build host: "directly from HOST" or "through here"
    copied_from: str | None = None
    #: dry-activate: what the host's switch-to-configuration said it would do
    dry_activate: tuple[str, ...] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status in (Status.OK, Status.UNCHANGED, Status.REBOOT_REQUIRED)

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.ROLLED_BACK)


# --- plans: what a deploy would change, read before anything changes --------------------------


class ChangeKind(enum.StrEnum):
    """How one package name differs between two closures."""

    ADDED = "added"  # the old closure has no path of that name
    REMOVED = "removed"  # the new closure has none
    CHANGED = "changed"  # versions differ
    SIZE = "size"  # same versions, NAR size differs by 8 KiB or more


@dataclass(frozen=True)
class PackageChange:
    """One line of `nix store diff-closures`: a package name, the versions only the old closure
    has and those only the new one has ("" is a path without a version, nix's ε), and the
    change of that name's total NAR size (nix shows it from 8 KiB on)."""

    name: str
    kind: ChangeKind
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    size_delta: int = 0


class PlanState(enum.StrEnum):
    """What a deploy would do to one host."""

    CHANGES = "changes"  # it would run another system (or a system for the first time)
    UNCHANGED = "unchanged"  # it runs the system already
    UNREACHABLE = "unreachable"
    FAILED = "failed"  # its system could not be built, or the host could not be read


@dataclass(frozen=True)
class KeyPlan:
    """The keys and secrets a deploy would upload (names only: content never leaves here)."""

    #: new or changed on the host, or unknown there (first upload)
    write: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    #: paths nixlift wrote before that are no longer declared
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostPlan:
    """What a deploy would change on one host, read without changing it."""

    name: str
    state: PlanState
    #: what /run/current-system names now, and the profile's system
    current: str | None = None
    profile: str | None = None
    #: what it would run (None: not built, with --no-build)
    system: str | None = None
    #: False with --no-build when its system is not in this machine's store yet
    built: bool = True
    changes: tuple[PackageChange, ...] = ()
    #: what the copy would send: paths the host lacks and their NAR size
    copy_paths: int | None = None
    copy_bytes: int | None = None
    #: of those, what the host could fetch from its own substituters (None: substitutes off)
    fetch_paths: int | None = None
    fetch_bytes: int | None = None
    #: NAR size of the closure it runs now and of the one it would run
    closure_before: int | None = None
    closure_after: int | None = None
    #: whether activation would run, and why (the alwaysActivate rule)
    activates: bool = False
    activation_reason: str = ""
    #: the host's own `switch-to-configuration dry-activate` output (--dry-activate)
    dry_activate: tuple[str, ...] | None = None
    keys: KeyPlan | None = None
    #: things to know (another deployer holds the host's lock, …)
    notes: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None
    #: what kind of failure (an error class's `kind`), and the failing command's last lines
    error_kind: str | None = None
    detail: str | None = None

    def change_counts(self) -> dict[ChangeKind, int]:
        """How many packages were added, removed and changed in version (size-only changes are
        not counted)."""
        counted = (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.CHANGED)
        return {k: sum(c.kind is k for c in self.changes) for k in counted}


@dataclass(frozen=True)
class FleetPlan:
    """Every selected host's plan, in the network's order, and what building would take."""

    hosts: tuple[HostPlan, ...]
    goal: Goal = Goal.SWITCH
    #: --no-build: nix's dry run of the systems not built yet
    would_build: tuple[str, ...] = ()
    would_fetch: tuple[str, ...] = ()
    #: derivations nix could not say how to produce
    unknown: tuple[str, ...] = ()

    def count(self, state: PlanState) -> int:
        return sum(h.state is state for h in self.hosts)

    @property
    def copy_bytes(self) -> int:
        return sum(h.copy_bytes or 0 for h in self.hosts)

    @property
    def copy_unknown(self) -> int:
        """Changing hosts whose copy is not known (their systems are not built here), so not
        in copy_bytes."""
        return sum(h.state is PlanState.CHANGES and h.copy_bytes is None for h in self.hosts)

    def common_changes(self, limit: int = 5) -> list[tuple[str, int]]:
        """The package names that change on most hosts, with how many: most first. A host's
        own system (`nixos-system-NAME`, which changes with anything) is not counted."""
        seen: dict[str, int] = {}
        for h in self.hosts:
            own = (h.system or "").rsplit("/", 1)[-1].partition("-")[2]
            for c in h.changes:
                if c.kind is not ChangeKind.SIZE and not own.startswith(c.name + "-"):
                    seen[c.name] = seen.get(c.name, 0) + 1
        ranked = sorted(seen.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit]
