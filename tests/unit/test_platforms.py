from pathlib import Path

import pytest

from nixlift.errors import PlatformError
from nixlift.model import DeploymentOptions, Machine
from nixlift.nix.platforms import (
    BuildCapability,
    binfmt_systems,
    capability_from_config,
    check,
    parse_builders,
)


def cap(**kw: object) -> BuildCapability:
    base: dict[str, object] = {
        "native": "x86_64-linux",
        "extra_platforms": frozenset(),
        "builder_systems": frozenset(),
        "local_builds": True,
        "binfmt_systems": frozenset(),
    }
    base.update(kw)
    return BuildCapability(**base)  # type: ignore[arg-type]


def machine(name: str, system: str, build_on_target: bool = False) -> Machine:
    return Machine(
        name,
        system,
        system,
        DeploymentOptions(target_host=name, build_on_target=build_on_target),
        "/nix/store/x.drv",
        "/nix/store/x",
    )


def test_native_and_compatible_systems_build() -> None:
    assert cap().why_not("x86_64-linux") is None
    assert cap().why_not("i686-linux") is None


def test_foreign_system_needs_extra_platforms_and_binfmt() -> None:
    reason = cap().why_not("aarch64-linux")
    assert reason is not None and "extra-platforms" in reason
    no_binfmt = cap(extra_platforms=frozenset({"aarch64-linux"})).why_not("aarch64-linux")
    assert no_binfmt is not None and "binfmt" in no_binfmt
    both = cap(
        extra_platforms=frozenset({"aarch64-linux"}), binfmt_systems=frozenset({"aarch64-linux"})
    )
    assert both.why_not("aarch64-linux") is None


def test_a_builder_for_the_system_is_enough() -> None:
    assert cap(builder_systems=frozenset({"aarch64-linux"})).why_not("aarch64-linux") is None
    assert cap(local_builds=False).why_not("x86_64-linux") is not None


def test_parse_builders_reads_systems_and_machine_files() -> None:
    spec = "ssh://a aarch64-linux,armv7l-linux /key 2; ssh://b - ;@/etc/nix/machines"
    files = {"/etc/nix/machines": "# comment\nssh://c riscv64-linux\n"}
    assert parse_builders(spec, files) == {"aarch64-linux", "armv7l-linux", "riscv64-linux"}
    assert parse_builders("") == frozenset()


def test_binfmt_systems_reads_enabled_entries(tmp_path: Path) -> None:
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n")
    (tmp_path / "qemu-arm").write_text("disabled\n")
    (tmp_path / "riscv64-linux").write_text("enabled\n")
    assert binfmt_systems(tmp_path) == {"aarch64-linux", "riscv64-linux"}
    assert binfmt_systems(tmp_path / "absent") == frozenset()


def test_capability_from_show_config() -> None:
    config = {
        "system": {"value": "x86_64-linux"},
        "extra-platforms": {"value": ["aarch64-linux"]},
        "builders": {"value": ""},
        "max-jobs": {"value": 0},
    }
    c = capability_from_config(config, frozenset())
    assert c.native == "x86_64-linux"
    assert c.extra_platforms == {"aarch64-linux"}
    assert not c.local_builds


def test_check_names_every_machine_and_the_ways_out() -> None:
    with pytest.raises(PlatformError) as e:
        check(
            cap(),
            [
                machine("pi3", "aarch64-linux"),
                machine("web", "x86_64-linux"),
                machine("pi4", "aarch64-linux"),
            ],
        )
    text = str(e.value)
    assert "'pi3' is aarch64-linux" in text and "'pi4' is aarch64-linux" in text
    assert "web" not in text
    assert 'boot.binfmt.emulatedSystems = [ "aarch64-linux" ]' in e.value.hint
    assert "--builders" in e.value.hint and "buildOnTarget" in e.value.hint
    # building on the target needs nothing here
    check(cap(), [machine("pi3", "aarch64-linux", build_on_target=True)])


def test_all_native_skips_the_probe_only_when_nothing_says_otherwise() -> None:
    from pathlib import Path as P

    from nixlift.model import Network
    from nixlift.nix.argv import NixSettings

    def net(*systems: str) -> Network:
        return Network(
            "n",
            "",
            (P("/n.nix"),),
            tuple(machine(f"m{i}", s) for i, s in enumerate(systems)),
            (),
            local_system="x86_64-linux",
        )

    from nixlift.nix.platforms import all_native

    assert all_native(net("x86_64-linux", "x86_64-linux"), NixSettings())
    assert not all_native(net("x86_64-linux", "aarch64-linux"), NixSettings())
    assert not all_native(net("x86_64-linux"), NixSettings(max_jobs="0"))
    assert not all_native(net("x86_64-linux"), NixSettings(builders="ssh://b x86_64-linux"))
    assert not all_native(
        net("x86_64-linux"), NixSettings(options=(("extra-platforms", "aarch64-linux"),))
    )
