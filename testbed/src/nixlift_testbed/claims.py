"""Claims of address blocks: one `CLAIMS_DIR/B.claim` file per /24 block a sandbox uses."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nixlift_testbed.addresses import FIRST_BLOCK, LAST_BLOCK, NETWORK, address_block
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.files import _write_atomic
from nixlift_testbed.processes import process_alive, process_start

log = logging.getLogger("nixlift_testbed")

#: one claim file per block in use, shared by every sandbox on this machine
CLAIMS_DIR = Path("/tmp/nixlift-sandbox-blocks")
#: a claim this young whose claimer still runs is never stale (its hosts may be starting)
CLAIM_GRACE = 120.0


@dataclass(frozen=True)
class Claim:
    block: int
    #: the sandbox directory holding the block, or None for an unreadable claim file
    directory: Path | None
    #: pid and start time (clock ticks) of the process that claimed it
    pid: int
    start: int | None
    mtime: float


def _sandbox_runs_in_block(directory: Path, block: int) -> bool:
    """Whether a host of the sandbox in `directory` with an address in `block` runs."""
    from nixlift_testbed.hosts import _read_state  # (hosts imports this module)

    try:
        state = _read_state(directory)
    except SandboxError:
        return False
    if state is None:
        return False
    return any(address_block(h.address) == block and h.running() for h in state.hosts)


class BlockClaims:
    """The claim files of address blocks, in `claims_dir` (one `B.claim` per block in use).

    `hosts_running(directory, block)`, `process_alive(pid, start)` and `clock()` are injectable
    for tests; every change happens under an flock on `claims_dir/.lock`, and each claim file is
    created with O_EXCL.
    """

    def __init__(
        self,
        claims_dir: Path = CLAIMS_DIR,
        *,
        hosts_running: Callable[[Path, int], bool] = _sandbox_runs_in_block,
        process_alive: Callable[[int, int | None], bool] = process_alive,
        clock: Callable[[], float] = time.time,
        grace: float = CLAIM_GRACE,
        blocks: Sequence[int] = range(FIRST_BLOCK, LAST_BLOCK + 1),
    ) -> None:
        self.claims_dir = claims_dir
        self.hosts_running = hosts_running
        self.process_alive = process_alive
        self.clock = clock
        self.grace = grace
        self.blocks = tuple(blocks)

    def path(self, block: int) -> Path:
        return self.claims_dir / f"{block}.claim"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.claims_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as e:
            raise SandboxError(f"cannot create {self.claims_dir}: {e.strerror}") from e
        info = self.claims_dir.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise SandboxError(
                f"{self.claims_dir} is not a directory of this user",
                hint="remove it: nixlift keeps its sandbox address claims there",
            )
        fd = os.open(self.claims_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a few file operations only
            yield
        finally:
            os.close(fd)

    def read(self, block: int) -> Claim | None:
        path = self.path(block)
        try:
            mtime = path.stat().st_mtime
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError:
            return Claim(block, None, 0, None, self.clock())
        try:
            data = json.loads(raw)
            start = data.get("start")
            return Claim(
                block,
                Path(str(data["directory"])),
                int(data["pid"]),
                int(start) if start is not None else None,
                mtime,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return Claim(block, None, 0, None, mtime)

    def is_stale(self, claim: Claim) -> bool:
        young = self.clock() - claim.mtime < self.grace
        if claim.directory is None:
            return not young
        if self.hosts_running(claim.directory, claim.block):
            return False
        return not (young and self.process_alive(claim.pid, claim.start))

    def _content(self, directory: Path) -> str:
        pid = os.getpid()
        body = {"directory": str(directory), "pid": pid, "start": process_start(pid)}
        return json.dumps(body) + "\n"

    def _create(self, block: int, directory: Path) -> bool:
        try:
            fd = os.open(self.path(block), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(self._content(directory))
        return True

    def _take(self, block: int, directory: Path) -> bool:
        claim = self.read(block)
        if claim is None:
            return self._create(block, directory)
        if claim.directory == directory:
            _write_atomic(self.path(block), self._content(directory))  # refresh pid and time
            return True
        if not self.is_stale(claim):
            return False
        log.info("taking over stale sandbox block %d from %s", block, claim.directory)
        with contextlib.suppress(FileNotFoundError):
            self.path(block).unlink()
        return self._create(block, directory)

    def acquire(self, directory: Path, count: int, prefer: Sequence[int] = ()) -> tuple[int, ...]:
        """`count` blocks for `directory`, keeping `prefer[i]` at position i where possible."""
        with self._locked():
            chosen: list[int | None] = [None] * count
            for i, block in enumerate(prefer[:count]):
                if block in self.blocks and block not in chosen and self._take(block, directory):
                    chosen[i] = block
            candidates = iter(b for b in self.blocks if b not in chosen)
            for i in range(count):
                while chosen[i] is None:
                    candidate = next(candidates, None)
                    if candidate is None:
                        taken = [b for b in chosen if b is not None and b not in prefer]
                        self._release(directory, taken)
                        raise SandboxError(
                            f"no free sandbox address block for {directory} "
                            f"(needs {count} of {NETWORK}'s /24 blocks "
                            f"{self.blocks[0]}-{self.blocks[-1]})",
                            hint=f"stop other sandboxes with `nixlift-sandbox down`; claims "
                            f"are in {self.claims_dir}",
                        )
                    if self._take(candidate, directory):
                        chosen[i] = candidate
            # blocks this directory still holds from before (say its state file was lost)
            self._release(directory, [b for b in self.owned(directory) if b not in chosen])
            return tuple(b for b in chosen if b is not None)

    def _release(self, directory: Path, blocks: Iterable[int]) -> None:
        for block in blocks:
            claim = self.read(block)
            if claim is not None and claim.directory == directory:
                with contextlib.suppress(FileNotFoundError):
                    self.path(block).unlink()

    def release(self, directory: Path, blocks: Iterable[int] | None = None) -> None:
        """Give up `blocks` (default: every block) claimed for `directory`."""
        if not self.claims_dir.is_dir():
            return
        with self._locked():
            self._release(directory, self.blocks if blocks is None else blocks)

    def owned(self, directory: Path) -> list[int]:
        """The blocks claimed for `directory`, in order."""
        try:
            names = os.listdir(self.claims_dir)
        except FileNotFoundError:
            return []
        claimed = {
            int(n.removesuffix(".claim"))
            for n in names
            if n.endswith(".claim") and n[:-6].isdigit()
        }
        result: list[int] = []
        for block in sorted(claimed & set(self.blocks)):
            claim = self.read(block)
            if claim is not None and claim.directory == directory:
                result.append(block)
        return result
