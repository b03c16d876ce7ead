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
