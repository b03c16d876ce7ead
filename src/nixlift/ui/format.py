"""The words for results and errors, shared by every output: plain lines, the live view, the
log files and the messages a failed command ends with."""

from __future__ import annotations

from nixlift.errors import CommandError, NixliftError
from nixlift.model import HostResult, Status

STATUS_WORDS = {
    Status.OK: "done",
    Status.UNCHANGED: "done (already up to date, nothing activated)",
    Status.REBOOT_REQUIRED: "done; REBOOT REQUIRED to finish switching",
    Status.FAILED: "FAILED",
    Status.ROLLED_BACK: "FAILED, ROLLED BACK",
    Status.SKIPPED: "skipped",
}

#: output lines shown with a failure
DETAIL_LINES = 10


def describe(result: HostResult) -> str:
    """`done in 1.2 s`, `FAILED, ROLLED BACK in 3.0 s: why`, `skipped: why`."""
    took = sum(d for _, d in result.durations)
    words = STATUS_WORDS[result.status]
    text = f"{words} in {took:.1f} s" if result.status is not Status.SKIPPED else words
    if result.error:
        text += f": {result.error}"
    return text


def failure_lines(result: HostResult, *, detail_lines: int = DETAIL_LINES) -> list[str]:
    """What follows a failed host's line: the failing command's last lines, then the hint."""
    lines = [f"| {line}" for line in (result.detail or "").splitlines()[-detail_lines:]]
    if result.hint:
        lines.append(f"hint: {result.hint}")
    return lines


def error_lines(error: NixliftError, *, debug: bool = False) -> list[str]:
    """An error that ends a command (or one host's part of it), as lines for stderr."""
    where = f"[{error.host}] " if error.host else ""
    lines = [f"error: {where}{error.message}"]
    if isinstance(error, CommandError):
        if error.stderr_tail and error.stderr_tail not in error.message:
            lines += [f"  | {line}" for line in error.stderr_tail.splitlines()[-15:]]
        if debug and error.argv:
            lines.append(f"  command: {' '.join(error.argv)}")
    if error.hint:
        lines.append(f"hint: {error.hint}")
    return lines


def closing_lines(results: list[HostResult]) -> list[str]:
    """The closing lines: every host's outcome, failures with their output tail and a hint."""
    ok = sum(r.succeeded for r in results)
    lines = [f"{ok} of {len(results)} hosts succeeded"]
    for r in results:
        if r.succeeded:
            continue
        lines.append(f"  {r.name}: {describe(r)}")
        lines += [f"    {line}" for line in failure_lines(r)]
    reboot = [r.name for r in results if r.status is Status.REBOOT_REQUIRED]
    if reboot:
        lines.append(f"  reboot required on: {', '.join(reboot)}")
    return lines


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


# ---------------------------------------------------------------------------------------------
# Pure formatting helpers


def _byte_scale(n: int) -> int:
    """The index into _BYTE_UNITS that shows `n` bytes with at most four digits before the point."""
    scale = 0
    while abs(n) >= 1024 ** (scale + 1) and scale < len(_BYTE_UNITS) - 1:
        scale += 1
    return scale


def _scaled(n: int, scale: int) -> str:
    return str(n) if scale == 0 else f"{n / 1024**scale:.1f}"


def format_bytes(n: int) -> str:
    """`512 B`, `3.1 MiB`, `1.0 GiB` (binary units)."""
    scale = _byte_scale(n)
    return f"{_scaled(n, scale)} {_BYTE_UNITS[scale]}"


def format_progress(
    done: int,
    expected: int,
    unit: str,
    bytes_done: int | None = None,
    bytes_expected: int | None = None,
) -> str:
    """`120/200 paths (60%)`, `3.1/20.0 MiB (15%)` (both numbers in the larger one's unit),
    `3/8 builds`; `expected` ≤ 0 means unknown: `120 paths`, `3.1 MiB`. Paths with the bytes
    sent: `120/200 paths (60%), 12.3 MiB`; and with the bytes to send, the share is of bytes:
    `120/200 paths, 12.3/20.0 MiB (61%)`."""
    if unit == "paths" and bytes_done is not None:
        if bytes_expected:
            paths = f"{done}/{expected} paths" if expected > 0 else f"{done} paths"
            return f"{paths}, {format_progress(bytes_done, bytes_expected, 'bytes')}"
        return f"{format_progress(done, expected, unit)}, {format_bytes(bytes_done)}"
    if expected <= 0:
        return format_bytes(done) if unit == "bytes" else f"{done} {unit}"
    share = "" if unit == "builds" else f" ({min(100, done * 100 // expected)}%)"
    if unit == "bytes":
        scale = _byte_scale(max(done, expected))
        return f"{_scaled(done, scale)}/{_scaled(expected, scale)} {_BYTE_UNITS[scale]}{share}"
    return f"{done}/{expected} {unit}{share}"


# --- plans ---------------------------------------------------------------------------------------
