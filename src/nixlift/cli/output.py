"""Data on stdout: JSON documents and plain tables; and how machines and results look there.

The JSON contract (docs/json.md, one JSON Schema per command in nixlift/schemas/): every `--json`
output is one object `{"version": 1, "command": …}`; hosts are under `hosts`, machines under
`machines`, each with its `name`; keys are snake_case (but the `deployment` options, which keep
their Nix names); times are RFC 3339 in UTC; an error is `{kind, message, hint, log_tail}`; a
field that is not true for a host is null, never a guess.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from nixlift.errors import CommandError, NixliftError
from nixlift.model import HostResult, Machine, Status

if TYPE_CHECKING:
    from nixlift.plans import HostPlan

#: the version of the JSON contract; a change that breaks a reader increases it
VERSION = 1


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def document(command: str, **fields: Any) -> dict[str, Any]:
    """One command's `--json` output."""
    return {"version": VERSION, "command": command, **fields}


def rfc3339(when: float | None = None) -> str:
    """A moment (now when None) as RFC 3339 in UTC: `2026-12-01T04:22:21Z`."""
    # (time, not datetime: every deploy says when it started; datetime is ~3 ms to import)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


def normalize_time(text: object) -> str | None:
    """A time as written by an older nixlift (`2026-11-24T21:51:03+0100`) in RFC 3339 UTC."""
    if not isinstance(text, str) or not text:
        return None
    from datetime import UTC, datetime

    for shape in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S %z"):
        try:
            parsed = datetime.strptime(text, shape)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return rfc3339(parsed.timestamp())
    return text


def error_json(
    kind: str, message: str, hint: str | None = None, log_tail: str | None = None
) -> dict[str, Any]:
    return {"kind": kind, "message": message, "hint": hint or None, "log_tail": log_tail or None}


def error_of(error: NixliftError) -> dict[str, Any]:
    tail = error.stderr_tail if isinstance(error, CommandError) else None
    return error_json(error.kind, error.message, error.hint, tail)


def plan_error(h: HostPlan) -> dict[str, Any] | None:
    if h.error is None:
        return None
    return error_json(h.error_kind or "error", h.error, h.hint, h.detail)


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
        "host_platform": m.host_platform,
        "target": target_text(m),
        "deployment": public_deployment(m.deployment.raw),
        "drv_path": m.drv_path,
        "out_path": m.out_path,
        # deploy-rs: the node's profiles besides the system, activated after it in this order
        "profiles": [{"name": p.name, "user": p.user, "path": p.path} for p in m.profiles],
    }


def result_json(r: HostResult) -> dict[str, Any]:
    error = (
        error_json(r.error_kind or "error", r.error, r.hint, r.detail)
        if r.error is not None
        else None
    )
    return {
        "name": r.name,
        "status": r.status.value,
        "succeeded": r.succeeded,
        # only a system that was built (or found built): null for a host that never got one
        "system": r.system,
        "copied": r.copied,
        "activated": r.activated,
        "durations": {str(stage): seconds for stage, seconds in r.durations},
        "error": error,
        "reboot_required": r.status is Status.REBOOT_REQUIRED,
        "keys": {"written": list(r.keys_written), "unchanged": list(r.keys_unchanged)},
        "copy_tries": r.copy_tries,
        "copied_bytes": r.copied_bytes,
        "cache": r.cache,
        "copied_from": r.copied_from,
        # dry-activate: the host's own words for what it would do (null for other goals)
        "dry_activate": list(r.dry_activate) if r.dry_activate is not None else None,
    }


def short_path(path: str | None) -> str:
    if not path:
        return "-"
    base = path.rsplit("/", 1)[-1]
    return base[:8] + "…" + base[32:] if len(base) > 33 else base
