"""Can this machine build a given system? Answered before any build starts.

Nix builds a derivation locally when its `system` is the native one or one of `extra-platforms`
(a foreign one then also needs a binfmt handler, or the build dies with "Exec format error"),
and remotely when a builder lists the system.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nixlift import proc
from nixlift.errors import PlatformError
from nixlift.nix import argv as nix_argv
from nixlift.nix.argv import NixSettings

if TYPE_CHECKING:
    from nixlift.model import Machine, Network

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# Systems a CPU runs without emulation, beyond its own.
_NATIVE_COMPAT = {
    "x86_64-linux": {
        "i686-linux",
        "x86_64-v1-linux",
        "x86_64-v2-linux",
        "x86_64-v3-linux",
        "x86_64-v4-linux",
    },
    "aarch64-linux": {"armv7l-linux", "armv6l-linux"},
}

# binfmt_misc entry names used by Debian's qemu-user-static (the first) and NixOS (the system).
QEMU_NAMES = {
    "aarch64": "qemu-aarch64",
    "armv7l": "qemu-arm",
    "armv6l": "qemu-arm",
    "i686": "qemu-i386",
    "x86_64": "qemu-x86_64",
    "riscv64": "qemu-riscv64",
    "powerpc64le": "qemu-ppc64le",
    "s390x": "qemu-s390x",
    "mips64el": "qemu-mips64el",
}


@dataclass(frozen=True)
class BuildCapability:
    """What this machine can build for: its platform, extra platforms, builders, binfmt."""

    native: str
    extra_platforms: frozenset[str]
    builder_systems: frozenset[str]
    local_builds: bool
    binfmt_systems: frozenset[str]

    def why_not(self, system: str) -> str | None:
        """None when `system` can be built; else why not, in words."""
        if system in self.builder_systems:
            return None
        if self.local_builds:
            if system == self.native or system in _NATIVE_COMPAT.get(self.native, set()):
                return None
            if system in self.extra_platforms:
                if system in self.binfmt_systems:
                    return None
                return (
                    f"nix lists {system} in extra-platforms, but no binfmt handler for it is "
                    "registered, so its builds would fail with 'Exec format error'"
                )
        elif system == self.native:
            return "local builds are off (--max-jobs 0) and no remote builder lists it"
        return (
            f"it is neither this machine's system ({self.native}) nor in extra-platforms, "
            "and no remote builder lists it"
        )


def parse_builders(spec: str, read_file: Mapping[str, str] | None = None) -> frozenset[str]:
    """Systems served by nix's `builders` setting (`uri systems key …`, `;`/newline separated,
    `@FILE` to read a machines file)."""
    systems: set[str] = set()
    for entry in spec.replace("\n", ";").split(";"):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            path = entry[1:]
            text = read_file.get(path) if read_file is not None else _read(path)
            if text:
                systems |= parse_builders(text, read_file)
            continue
        fields = entry.split()
        if len(fields) >= 2 and fields[1] != "-":
            systems.update(s for s in fields[1].split(",") if s)
    return frozenset(systems)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def binfmt_systems(directory: Path = BINFMT_DIR) -> frozenset[str]:
    """Systems whose binaries the kernel hands to an enabled binfmt_misc interpreter."""
    found: set[str] = set()
    for cpu, qemu in QEMU_NAMES.items():
        system = f"{cpu}-linux"
        for name in (qemu, system):
            try:
                first = (directory / name).read_text().splitlines()[:1]
            except OSError:
                continue
            if first == ["enabled"]:
                found.add(system)
    return frozenset(found)


def capability_from_config(config: Mapping[str, object], binfmt: frozenset[str]) -> BuildCapability:
    """From `nix show-config --json` output."""

    def value(name: str) -> object:
        entry = config.get(name)
        return entry.get("value") if isinstance(entry, dict) else entry

    extra = value("extra-platforms") or []
    max_jobs = value("max-jobs")
    return BuildCapability(
        native=str(value("system")),
        extra_platforms=frozenset(extra if isinstance(extra, list) else str(extra).split()),
        builder_systems=parse_builders(str(value("builders") or "")),
        local_builds=max_jobs not in (0, "0"),
        binfmt_systems=binfmt,
    )


async def probe(settings: NixSettings) -> BuildCapability:
    done = await proc.run(nix_argv.show_config(settings), what="reading nix's configuration")
    return capability_from_config(json.loads(done.stdout), binfmt_systems())


def all_native(network: Network, settings: NixSettings) -> bool:
    """Every machine is built here for this machine's own system, and nothing in the settings
    changes where builds go: asking nix how it builds (one more process) can be skipped."""
    changed = (
        settings.builders is not None
        or settings.max_jobs in ("0",)
        or any(
            name in ("system", "extra-platforms", "builders", "max-jobs")
            for name, _ in settings.options
        )
    )
    return (
        bool(network.local_system)
        and not changed
        and all(
            m.system == network.local_system
            for m in network.machines
            if not m.deployment.build_on_target
        )
    )


def check(capability: BuildCapability, machines: Iterable[Machine]) -> None:
    """Raise one PlatformError naming every machine this machine cannot build for."""
    problems = []
    for m in machines:
        if m.deployment.build_on_target:
            continue
        reason = capability.why_not(m.system)
        if reason is not None:
            problems.append((m, reason))
    if not problems:
        return
    lines = [
        f"machine '{m.name}' is {m.system}, which cannot be built here: {why}"
        for m, why in problems
    ]
    systems = sorted({m.system for m, _ in problems})
    wanted = " ".join(systems)
    quoted = " ".join(f'"{s}"' for s in systems)
    raise PlatformError(
        "\n".join(lines),
        hint=(
            "ways out:\n"
            f"  - emulate it on this machine: on NixOS, boot.binfmt.emulatedSystems = [ "
            f"{quoted} ]; elsewhere install "
            f"qemu-user-static and binfmt-support and add `extra-platforms = {wanted}` to "
            f"nix.conf (or pass --option extra-platforms '{wanted}')\n"
            f"  - a remote builder: --builders 'ssh://HOST {','.join(systems)}'\n"
            "  - build on the host itself: deployment.buildOnTarget = true"
        ),
    )
