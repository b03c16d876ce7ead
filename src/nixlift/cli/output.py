"""Data on stdout: JSON documents and plain tables; and how machines and results look there."""

from __future__ import annotations

import json
import sys
from typing import Any

from nixlift.model import HostResult, Machine, Status


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    table = [header, *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def target_text(m: Machine) -> str:
    d = m.deployment
    if d.target_host is None:
        return "(this machine)"
    user = f"{d.target_user}@" if d.target_user else ""
    port = f":{d.target_port}" if d.target_port else ""
    return f"{user}{d.target_host}{port}"


REDACTED = "<redacted>"


def public_deployment(raw: dict[str, Any]) -> dict[str, Any]:
    """deployment.* as it may be shown: HTTP health check header values (an Authorization
    header's token) hidden; key texts never reach Python outside an upload anyway."""
    shown = dict(raw)
    for which in ("healthChecks", "preDeployChecks"):
        checks = raw.get(which)
        if isinstance(checks, dict) and checks.get("http"):
            shown[which] = {
                **checks,
                "http": [
                    {**c, "headers": dict.fromkeys(c.get("headers") or {}, REDACTED)}
                    for c in checks["http"]
                ],
            }
    return shown


def machine_json(m: Machine) -> dict[str, Any]:
    return {
        "name": m.name,
        "system": m.system,
        "hostPlatform": m.host_platform,
        "target": target_text(m),
        "deployment": public_deployment(m.deployment.raw),
        "drvPath": m.drv_path,
        "outPath": m.out_path,
        # deploy-rs: the node's profiles besides the system, activated after it in this order
        **(
            {"profiles": [{"name": p.name, "user": p.user, "path": p.path} for p in m.profiles]}
            if m.profiles
            else {}
        ),
    }


def result_json(r: HostResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "status": r.status.value,
        "succeeded": r.succeeded,
        "system": r.system,
        "copied": r.copied,
        "activated": r.activated,
        "durations": {str(stage): seconds for stage, seconds in r.durations},
        "error": r.error,
        "hint": r.hint,
        "rebootRequired": r.status is Status.REBOOT_REQUIRED,
        "keys": {"written": list(r.keys_written), "unchanged": list(r.keys_unchanged)},
        "copyTries": r.copy_tries,
        "cache": r.cache,
        "copiedFrom": r.copied_from,
        # dry-activate: the host's own words for what it would do (only for that goal)
        **({"dry_activate": list(r.dry_activate)} if r.dry_activate is not None else {}),
    }


def short_path(path: str | None) -> str:
    if not path:
        return "-"
    base = path.rsplit("/", 1)[-1]
    return base[:8] + "…" + base[32:] if len(base) > 33 else base
