"""Health checks (morph's deployment.healthChecks / preDeployChecks): commands run on the host,
HTTP requests made from here, each retried every `period` seconds until it passes or `timeout`
seconds have gone by; and, where the host runs systemd, its own verdict."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nixlift.errors import NixliftError
from nixlift.events import Emit, Phase
from nixlift.model import Machine, Stage
from nixlift.transport.base import Host


class HealthCheckError(NixliftError):
    """A health check did not pass in time."""

    kind = "health-check"


@dataclass(frozen=True)
class CheckResult:
    """How one health check ended on one host."""

    host: str
    kind: str  # "cmd" | "http" | "systemd"
    description: str
    ok: bool
    attempts: int
    seconds: float
    detail: str = ""


async def _retry(
    host: str,
    kind: str,
    description: str,
    period: int,
    timeout: int,
    attempt: Callable[[float], Awaitable[str | None]],
) -> CheckResult:
    """`attempt(time_left)` returns None when the check passed, else why not."""
    start = time.monotonic()
    attempts = 0
    why = "not run"
    while True:
        attempts += 1
        left = timeout - (time.monotonic() - start)
        why_not = await attempt(max(left, 1.0))
        took = round(time.monotonic() - start, 2)
        if why_not is None:
            return CheckResult(host, kind, description, True, attempts, took)
        why = why_not
        if time.monotonic() - start + period > timeout:
            return CheckResult(host, kind, description, False, attempts, took, why)
        await asyncio.sleep(period)


def _cmd_check(host: Host, check: dict[str, Any]) -> Callable[[float], Awaitable[str | None]]:
    async def attempt(left: float) -> str | None:
        try:
            done = await host.run(
                check["cmd"],
                what="a health check",
                check=False,
                timeout=left,
                stop_with_connection=True,
            )
        except NixliftError as e:
            return str(e)
        if done.returncode == 0:
            return None
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        return f"exit status {done.returncode}" + (f": {tail[0]}" if tail else "")

    return attempt


def http_url(machine: Machine, check: dict[str, Any]) -> str:
    host = check.get("host") or machine.deployment.target_host or "localhost"
    return f"{check.get('scheme', 'http')}://{host}:{check.get('port', 80)}{check.get('path', '/')}"


def _http_check(
    machine: Machine, check: dict[str, Any]
) -> Callable[[float], Awaitable[str | None]]:
    # imported here: urllib pulls in http.client and email, ~15 ms of every start otherwise
    import ssl
    import urllib.error
    import urllib.request

    url = http_url(machine, check)
    context = ssl.create_default_context()
    if check.get("insecureSSL"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    def request(left: float) -> str | None:
        # The scheme is deployment.healthChecks.http's enum: http or https, never file:.
        req = urllib.request.Request(url, headers=dict(check.get("headers") or {}))  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=left, context=context) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            return f"{url}: {getattr(e, 'reason', e)}"
        return None if 200 <= status < 300 else f"{url}: HTTP {status}"

    async def attempt(left: float) -> str | None:
        return await asyncio.to_thread(request, min(left, float(check.get("period", 2)) + 5))

    return attempt


_SYSTEMD = """
[ -d /run/systemd/system ] || { echo no-systemd; exit 0; }
state=$(timeout "$1" systemctl is-system-running --wait 2>/dev/null)
echo "$state"
[ "$state" = running ] || systemctl list-units --failed --output=json --no-pager 2>/dev/null
"""


async def _systemd(host: Host, timeout: int) -> CheckResult | None:
    """Where the host runs systemd: wait for it to settle and name failed units (from JSON)."""
    start = time.monotonic()
    done = await host.run(
        ["sh", "-c", _SYSTEMD, "nixlift-systemd", str(timeout)],
        what="asking systemd",
        check=False,
        timeout=timeout + 10,
    )
    state, _, rest = done.stdout.partition("\n")
    if state == "no-systemd":
        return None
    took = round(time.monotonic() - start, 2)
    name = host.name
    if state in ("running", ""):
        return CheckResult(
            name,
            "systemd",
            "system state",
            state == "running",
            1,
            took,
            "" if state else "no answer from systemctl",
        )
    try:
        failed = [u.get("unit", "?") for u in json.loads(rest or "[]")]
    except json.JSONDecodeError:
        failed = []
    detail = f"system is {state}" + (f"; failed units: {', '.join(failed)}" if failed else "")
    return CheckResult(name, "systemd", "system state", False, 1, took, detail)


async def run_checks(
    host: Host, machine: Machine, which: str, emit: Emit, *, systemd: bool = False
) -> list[CheckResult]:
    """Run all of the machine's `which` checks ("healthChecks" or "preDeployChecks") at once."""
    checks = machine.deployment.raw.get(which) or {}
    name = machine.name
    jobs: list[Awaitable[CheckResult | None]] = []
    for c in checks.get("cmd", []):
        desc = c.get("description") or " ".join(c["cmd"])
        jobs.append(_retry(name, "cmd", desc, c["period"], c["timeout"], _cmd_check(host, c)))
    for c in checks.get("http", []):
        desc = c.get("description") or http_url(machine, c)
        jobs.append(_retry(name, "http", desc, c["period"], c["timeout"], _http_check(machine, c)))
    if systemd:
        jobs.append(_systemd(host, 60))
    if not jobs:
        return []
    emit(Phase(name, Stage.CHECK, f"{len(jobs)} check{'s' if len(jobs) != 1 else ''}"))
    results = await asyncio.gather(*jobs)
    return [r for r in results if r is not None]


def require_passing(results: list[CheckResult], which: str = "health check") -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise HealthCheckError(
            f"{which} '{first.description}' on {first.host} failed after {first.attempts} "
            f"attempt{'s' if first.attempts != 1 else ''} in {first.seconds:g} s: "
            f"{first.detail}{more}",
            host=first.host,
            hint="`nixlift check` runs the checks again; fix the configuration or the check",
        )
