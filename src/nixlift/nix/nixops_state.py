"""NixOps' state file (SQLite, `~/.nixops/deployments.nixops`), read without changing it: each
deployment's name, network files, arguments and -I path, and its resources (machines and cloud
resources), for `nixlift import-nixops`.

Schema 3 (NixOps 1.7 and 2.x): Deployments(uuid), DeploymentAttrs(deployment, name, value),
Resources(id, deployment, name, type), ResourceAttrs(machine, name, value); schemas before 3
call the last two Machines and MachineAttrs. Every value is text (JSON for lists and sets); a
value equal to its default has no row.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nixlift.errors import UsageError


def default_path() -> Path:
    """Where NixOps keeps its state: $NIXOPS_STATE, $CHARON_STATE, ~/.nixops/deployments.nixops."""
    for variable in ("NIXOPS_STATE", "CHARON_STATE"):
        value = os.environ.get(variable)
        if value:
            return Path(value)
    return Path.home() / ".nixops" / "deployments.nixops"


@dataclass(frozen=True)
class Resource:
    name: str
    #: `none` for a machine reached over SSH; a backend or cloud resource type otherwise
    type: str
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StateDeployment:
    uuid: str
    name: str | None
    description: str | None
    #: NixOps 1.x's nixExprs: the network files (NixOps 2 takes them from -d DIR, not stored)
    network_files: tuple[str, ...]
    #: --arg NAME EXPR as NixOps stored them (an --argstr is kept as a Nix string expression)
    args: tuple[tuple[str, str], ...]
    #: nixPath: the -I entries
    nix_path: tuple[str, ...]
    resources: tuple[Resource, ...]

    @property
    def label(self) -> str:
        return self.name or self.uuid


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise UsageError(
            f"NixOps state file {path} does not exist",
            hint="give its path (nixlift import-nixops FILE), or set NIXOPS_STATE",
        )
    # Read-only. Without a write-ahead log beside it, `immutable` also keeps SQLite from
    # creating one; with one (NixOps may be running), the log must be read too.
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
    try:
        return sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
    except sqlite3.Error as e:
        raise UsageError(f"cannot open the NixOps state file {path}: {e}") from None


def _json_list(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    value = json.loads(text)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def read(path: Path) -> list[StateDeployment]:
    """Every deployment of the state file, in the order NixOps created them."""
    db = _connect(path)
    try:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
        if "Deployments" not in tables or "DeploymentAttrs" not in tables:
            raise UsageError(
                f"{path} is not a NixOps state file (it has no Deployments table)",
                hint="give the file NixOps keeps (~/.nixops/deployments.nixops)",
            )
        # (schemas before 3 call them Machines and MachineAttrs)
        new = "Resources" in tables
        resources, resource_attrs = (
            ("Resources", "ResourceAttrs") if new else ("Machines", "MachineAttrs")
        )
        found = []
        for (uuid,) in db.execute("select uuid from Deployments order by rowid").fetchall():
            attrs = dict(
                db.execute(
                    "select name, value from DeploymentAttrs where deployment = ?", (uuid,)
                ).fetchall()
            )
            args = json.loads(attrs.get("args") or "{}")
            owned = []
            if resources in tables:
                for rid, name, kind in db.execute(
                    f"select id, name, type from {resources} where deployment = ? order by id",  # noqa: S608 (a table name of the two above)
                    (uuid,),
                ).fetchall():
                    values = dict(
                        db.execute(
                            f"select name, value from {resource_attrs} where machine = ?",  # noqa: S608
                            (rid,),
                        ).fetchall()
                    )
                    owned.append(Resource(str(name), str(kind), values))
            found.append(
                StateDeployment(
                    uuid=str(uuid),
                    name=attrs.get("name"),
                    description=attrs.get("description"),
                    network_files=_json_list(attrs.get("nixExprs")),
                    args=tuple((str(k), str(v)) for k, v in sorted(args.items())),
                    nix_path=_json_list(attrs.get("nixPath")),
                    resources=tuple(owned),
                )
            )
        return found
    except (sqlite3.Error, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read the NixOps state file {path}: {e}") from None
    finally:
        db.close()


def not_carried(deployment: StateDeployment) -> list[str]:
    """What nixlift does not take over from a deployment, each said in a line."""
    lines = []
    if not deployment.network_files:
        lines.append(
            "its network files are not recorded (NixOps 2 takes them from -d DIR): register "
            f"them with nixlift create --flake DIR -d {deployment.label} (or NETWORK.nix)"
        )
    for r in deployment.resources:
        if r.type != "none":
            lines.append(
                f"{r.name} ({r.type}): a NixOps backend resource; nixlift deploys to machines "
                "that exist and are reached over SSH, and creates none"
            )
        elif r.attrs.get("none.sshPrivateKey"):
            lines.append(
                f"{r.name}: the SSH key NixOps generated for it stays in the state file; give "
                "nixlift a key the host accepts (ssh-agent, or deployment.sshOptions = "
                '[ "-i" "/path/key" ])'
            )
    return lines
