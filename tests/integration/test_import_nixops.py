"""`nixlift import-nixops`: a NixOps 1.x state file (schema 3, as NixOps writes it) imported
without a change to it, then deployed by name to sandbox hosts."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import current_system, deploy_json, nixlift, write_network

pytestmark = pytest.mark.integration

# NixOps' statefile.py, schema version 3
SCHEMA = """
create table SchemaVersion (version integer not null);
insert into SchemaVersion (version) values (3);
create table Deployments (uuid text primary key);
create table DeploymentAttrs (
  deployment text not null, name text not null, value text not null,
  primary key(deployment, name),
  foreign key(deployment) references Deployments(uuid) on delete cascade);
create table Resources (
  id integer primary key autoincrement, deployment text not null,
  name text not null, type text not null,
  foreign key(deployment) references Deployments(uuid) on delete cascade);
create table ResourceAttrs (
  machine integer not null, name text not null, value text not null,
  primary key(machine, name),
  foreign key(machine) references Resources(id) on delete cascade);
"""


@dataclass(frozen=True)
class Dep:
    uuid: str
    attrs: dict[str, str]
    #: name: (type, attributes)
    resources: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def make_state(path: Path, deployments: list[Dep]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma journal_mode = wal")
    db.executescript(SCHEMA)
    for d in deployments:
        db.execute("insert into Deployments (uuid) values (?)", (d.uuid,))
        for name, value in d.attrs.items():
            db.execute(
                "insert into DeploymentAttrs (deployment, name, value) values (?, ?, ?)",
                (d.uuid, name, value),
            )
        for rname, (rtype, rattrs) in d.resources.items():
            rid = db.execute(
                "insert into Resources (deployment, name, type) values (?, ?, ?)",
                (d.uuid, rname, rtype),
            ).lastrowid
            for name, value in rattrs.items():
                db.execute(
                    "insert into ResourceAttrs (machine, name, value) values (?, ?, ?)",
                    (rid, name, value),
                )
    db.close()


def fingerprint(path: Path) -> tuple[str, float, list[str]]:
    return (
        hashlib.sha256(path.read_bytes()).hexdigest(),
        path.stat().st_mtime,
        sorted(p.name for p in path.parent.iterdir()),
    )


def test_a_nixops_state_file_imports_and_deploys(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path / "net",
        sb,
        '  h1 = { ... }: { environment.etc."colour".text = colour; };',
        name="web.nix",
    )
    net.write_text(net.read_text().replace("let sb =", "{ colour }: let sb =", 1))
    state_dir = tmp_path / "nixops"
    state_dir.mkdir()
    state = state_dir / "deployments.nixops"
    make_state(
        state,
        [
            Dep(
                "6f0c0d8e-0000-11ee-0000-000000000001",
                {
                    "name": "web",
                    "nixExprs": json.dumps([str(net)]),
                    # --argstr colour blue, as NixOps keeps it: a Nix string expression
                    "args": json.dumps({"colour": '"blue"'}),
                },
                {
                    "h1": ("none", {"targetHost": "h1", "none.sshPrivateKey": "-----BEGIN"}),
                    "assets": ("s3-bucket", {"region": "eu-west-1"}),
                },
            ),
            # NixOps 2 keeps no network files
            Dep("6f0c0d8e-0000-11ee-0000-000000000002", {"name": "two"}),
        ],
    )
    before = fingerprint(state)
    env = {"NIXLIFT_REGISTRY": str(tmp_path / "registry.json"), "NIXOPS_STATE": str(state)}

    done = nixlift("import-nixops", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["web"]
    assert "assets (s3-bucket)" in done.stderr
    assert "h1: the SSH key NixOps generated" in done.stderr
    assert "two: not carried over: its network files are not recorded" in done.stderr
    assert "1 of 2 deployments imported" in done.stderr
    assert fingerprint(state) == before  # not a byte, not a file beside it

    listed = json.loads(nixlift("list", "--json", env=env).stdout)["deployments"]
    assert listed[0]["name"] == "web" and listed[0]["files"] == [str(net)]
    assert listed[0]["args"] == [["colour", '"blue"']]

    done, hosts = deploy_json("-d", "web", env=env, cwd=Path("/"))
    assert done.returncode == 0, done.stderr
    system = hosts["h1"]["system"]
    assert current_system(sb.host("h1")) == system
    assert Path(system, "etc/colour").read_text().strip() == "blue"

    # again: the name is taken, left as it is; an unknown deployment is an error
    again = nixlift("import-nixops", state, "-d", "web", env=env)
    assert again.returncode == 0 and "registered already" in again.stderr
    unknown = nixlift("import-nixops", state, "-d", "nope", env=env)
    assert unknown.returncode == 2 and "no deployment nope" in unknown.stderr
    missing = nixlift("import-nixops", tmp_path / "none.nixops", env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert fingerprint(state) == before
