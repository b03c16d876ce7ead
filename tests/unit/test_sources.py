"""Telling a flake from a network file, the command line's ways to name one, the registry's flake
entries, colmena's machinesFile, morph's waves and NixOps' state file: pure logic, no nix."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from nixlift.cli.options import NetworkChoice
from nixlift.cli.source import resolve, with_network_config
from nixlift.deploy.pipeline import waves
from nixlift.errors import EvalError, UsageError
from nixlift.model import DeploymentOptions, Machine, Network
from nixlift.nix import nixops_state
from nixlift.nix.argv import NixSettings
from nixlift.nix.flake import FlakeRef, check_local, looks_like_flake
from nixlift.registry import Entry, Registry


def test_flake_references_are_split_at_the_hash() -> None:
    assert FlakeRef.parse(".#pi3") == FlakeRef(".", "pi3")
    assert FlakeRef.parse("#pi3") == FlakeRef(".", "pi3")
    assert FlakeRef.parse("path:/srv/fleet") == FlakeRef("path:/srv/fleet", None)
    assert FlakeRef.parse("/srv/fleet/flake.nix#colmena") == FlakeRef("/srv/fleet", "colmena")
    assert FlakeRef.parse("github:me/fleet#nixopsConfigurations.default").attr == (
        "nixopsConfigurations.default"
    )
    assert FlakeRef("x", "deploy").text == "x#deploy"


def test_what_is_a_flake(tmp_path: Path) -> None:
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "flake.nix").write_text("{ }")
    (tmp_path / "net.nix").write_text("{ }")
    (tmp_path / "plain").mkdir()
    assert looks_like_flake(str(tmp_path / "fleet"))
    assert looks_like_flake(str(tmp_path / "fleet" / "flake.nix"))
    assert looks_like_flake(".#pi3") and looks_like_flake("git+file:///srv/fleet")
    assert looks_like_flake("github:me/fleet") and looks_like_flake("path:./fleet")
    assert not looks_like_flake(str(tmp_path / "net.nix"))
    assert not looks_like_flake(str(tmp_path / "plain"))


def test_local_flakes_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fleet").mkdir()
    monkeypatch.chdir(tmp_path)
    ref = FlakeRef("fleet", "h1")
    # nix would read a bare `fleet` as a name in its flake registry
    assert ref.is_path and ref.for_nix == str(tmp_path / "fleet")
    assert ref.absolute() == FlakeRef(str(tmp_path / "fleet"), "h1")
    assert FlakeRef("path:./fleet").absolute().ref == f"path:{tmp_path / 'fleet'}"
    assert FlakeRef("git+file:///srv/x?dir=y").local_dir() == Path("/srv/x")
    assert FlakeRef("github:me/x").local_dir() is None
    assert not FlakeRef("nixpkgs").is_path and FlakeRef("nixpkgs").for_nix == "nixpkgs"


def resolved(choice: NetworkChoice) -> tuple[FlakeRef | None, tuple[Path, ...], str]:
    req = asyncio.run(resolve(choice))
    return req.source.flake, req.source.files, req.source.deployment_name


def test_the_command_line_names_a_flake_or_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "flake.nix").write_text("{ }")
    assert resolved(NetworkChoice(flake=".#h1")) == (FlakeRef(".", "h1"), (), tmp_path.name)
    assert resolved(NetworkChoice(files=("fleet",))) == (FlakeRef("fleet"), (), "fleet")
    assert resolved(NetworkChoice(files=("a.nix", "b.nix"), deployment="x")) == (
        None,
        (Path("a.nix"), Path("b.nix")),
        "x",
    )
    with pytest.raises(UsageError, match="read alone"):
        resolved(NetworkChoice(files=("fleet", "b.nix")))
    with pytest.raises(UsageError, match=r"--flake \.#h1 and network files"):
        resolved(NetworkChoice(files=("b.nix",), flake=".#h1"))


def test_a_registered_flake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "r.json"
    monkeypatch.setenv("NIXLIFT_REGISTRY", str(registry))
    Registry().put(Entry("pi", (), flake="/srv/fleet#pi3"))
    Registry().put(Entry("web", ("/n/web.nix",)))
    assert Registry().get("pi").shown == "flake /srv/fleet#pi3"
    # entries of files are written as before: no flake key
    assert "flake" not in json.loads(registry.read_text())["deployments"]["web"]
    flake, files, name = resolved(NetworkChoice(deployment="pi"))
    assert (flake, files, name) == (FlakeRef("/srv/fleet", "pi3"), (), "pi")


def net(**kw: object) -> Network:
    return Network("n", "", (), (), (), **kw)  # type: ignore[arg-type]


def test_colmena_machines_file_gives_the_builders_unless_the_command_line_does() -> None:
    assert with_network_config(NixSettings(), net(machines_file="/m")).builders == "@/m"
    given = NixSettings(builders="ssh://b x86_64-linux")
    assert with_network_config(given, net(machines_file="/m")).builders == given.builders
    assert with_network_config(NixSettings(), net()).builders is None


def m(name: str, *tags: str) -> Machine:
    return Machine(name, "", "", DeploymentOptions(name, tags=tags), "", "")


def test_waves_follow_morphs_ordering_tags() -> None:
    a, b, c, d = m("a", "web"), m("b", "db"), m("c"), m("d", "db", "web")
    assert waves([a, b, c, d], ()) == [[a, b, c, d]]
    assert waves([a, b, c, d], ("db", "web")) == [[b, d], [a], [c]]
    assert waves([a, b], ("cache", "web", "db")) == [[a], [b]]
    assert waves([a], ("web",)) == [[a]]


def test_an_old_nixops_state_file_and_what_it_cannot_carry(tmp_path: Path) -> None:
    path = tmp_path / "old.nixops"
    db = sqlite3.connect(path)
    # schemas before 3 call the resources Machines and MachineAttrs
    db.executescript(
        """
        create table Deployments (uuid text primary key);
        create table DeploymentAttrs (deployment text, name text, value text);
        create table Machines (id integer primary key, deployment text, name text, type text);
        create table MachineAttrs (machine integer, name text, value text);
        insert into Deployments values ('u1');
        insert into DeploymentAttrs values ('u1', 'nixExprs', '["/n/a.nix", "/n/b.nix"]');
        insert into DeploymentAttrs values ('u1', 'nixPath', '["nixpkgs=/p"]');
        insert into Machines values (1, 'u1', 'vm', 'virtualbox');
        """
    )
    db.commit()
    db.close()
    [d] = nixops_state.read(path)
    assert (d.label, d.network_files, d.nix_path) == (
        "u1",
        ("/n/a.nix", "/n/b.nix"),
        ("nixpkgs=/p",),
    )
    [line] = nixops_state.not_carried(d)
    assert line.startswith("vm (virtualbox)")
    (tmp_path / "other").write_text("not sqlite")
    with pytest.raises(UsageError, match="cannot"):
        nixops_state.read(tmp_path / "other")


def test_a_local_flake_must_be_there(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="does not exist"):
        check_local(FlakeRef(str(tmp_path / "nope")))
    with pytest.raises(EvalError, match=r"has no flake\.nix"):
        check_local(FlakeRef(str(tmp_path)))
    check_local(FlakeRef("github:me/fleet"))  # not a local one: nix will say
