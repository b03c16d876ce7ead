"""Sandbox hosts: local stand-ins for NixOS machines, reached over SSH on loopback.

Each host is an sshd under its own init (`standin-init`, PID 1 of its own mount, pid and uts
namespaces; see `init.sh`), with its own `/nix` (store and profiles), `/run` (tmpfs, fresh at
each boot), `/etc` (an overlay on the real one), `/root` (an empty home) and `/var/lib/standin`
(a state directory), so a deployer can copy closures to it and activate them as on a separate
machine. Hosts listen on `127.77.B.N:PORT`.

As on NixOS, the host's sshd takes authorized keys only from `/etc/ssh/authorized_keys.d/%u`,
which the deployed system manages (`services.openssh.enable` and `users.users.<user>.openssh.
authorizedKeys.keys` of the stand-in nixpkgs). When a host starts and has no
`/etc/ssh/authorized_keys.d/root` yet, `up` puts the sandbox's client key there (as an installer
would); after that, what the host's last activation wrote stays.

Reboots: `reboot` inside a host, or `SandboxHost.reboot()` from outside, ends every process of
the host (its sshd and sessions) and boots it again within a second or so: same address, /nix,
/etc and state, a fresh /run, a new `/proc/sys/kernel/random/boot_id` (as seen inside), and the
stand-in bootloader's entry activated (`$state/boot-once` once, else `$state/boot-default`;
`standin-bootctl` inside the host sets them). The host's `pid` (its `unshare`) stays the same.

Layout of a sandbox directory:

    state.json            the state (hosts, addresses, pids, blocks), human-readable
    ssh_config            `ssh -F DIR/ssh_config h1` (host keys verified against known_hosts)
    known_hosts           `[127.77.B.N]:PORT ssh-ed25519 …` for every host
    id_ed25519(.pub)      the client key, authorised for root on every host (see above)
    init.sh               a copy of the package's init script (what the hosts run)
    bin/                  standin-init, reboot, standin-bootctl: copies of init.sh, which
                          acts by the name it runs as; merged into each host's /usr/local/sbin
    hosts/hN/             nix/ etc-upper/ etc-work/ root/ state/ log sshd_config
                          ssh_host_ed25519_key(.pub)

Address blocks: several sandboxes may run at once (one per pytest-xdist worker or test). Each
claims whole /24 blocks `127.77.B.0/24` (B in 1..250, hosts .1 to .250) with a claim file
`CLAIMS_DIR/B.claim` created with O_EXCL; a sandbox of more than 250 hosts claims several blocks
(host h251 is the first host of its second block). A claim is stale, and may be taken over, when
none of its sandbox's hosts in that block runs and its claimer is gone (or claimed it more than
`CLAIM_GRACE` seconds ago).

Processes: the long-lived host processes start through `nixlift.proc.spawn_detached` (they must
outlive `nixlift sandbox up`); everything else through `nixlift.proc.run`. A host's `pid` is that
of its `unshare` process; its namespace's init (`standin-init`, a shell whose child is sshd) is
that process's only child, for every boot of the host. From outside,
the host's file system is `/proc/PID/root/…`; links in it (`/run/current-system`, profiles) name
store paths of the *host's* store, so they are read with `readlink`, never followed from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import socket
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from nixlift import proc
from nixlift.errors import CommandError, MissingProgramError, SandboxError

log = logging.getLogger("nixlift.sandbox")

T = TypeVar("T")

#: port every sandbox host's sshd listens on unless `up(port=…)` says otherwise
DEFAULT_PORT = 2222
#: the loopback range of all sandbox hosts; one /24 block per (part of a) sandbox
NETWORK = "127.77.0.0/16"
NETWORK_PREFIX = "127.77"
HOSTS_PER_BLOCK = 250
FIRST_BLOCK = 1
LAST_BLOCK = 250
MAX_HOSTS = HOSTS_PER_BLOCK * (LAST_BLOCK - FIRST_BLOCK + 1)
#: one claim file per block in use, shared by every sandbox on this machine
CLAIMS_DIR = Path("/tmp/nixlift-sandbox-blocks")
#: a claim this young whose claimer still runs is never stale (its hosts may be starting)
CLAIM_GRACE = 120.0
#: seconds a new host has to accept SSH connections
READY_TIMEOUT = 15.0
#: seconds between SIGTERM and SIGKILL, and after SIGKILL, when stopping a host
STOP_TIMEOUT = 3.0
#: seconds to wait for another nixlift command holding the sandbox directory's lock
LOCK_TIMEOUT = 120.0

STATE_FILE = "state.json"
MARKER_FILE = ".nixlift-sandbox"
STATE_FORMAT = 1
#: inside each host: its state directory
STATE_MOUNT = "/var/lib/standin"

_LOG_MARK = "=== nixlift sandbox: starting "
_ROOT_HINT = "sandbox hosts need root (mount and pid namespaces): run nixlift as root or with sudo"


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, kw_only=True)
class SandboxHost:
    """One running (or formerly running) sandbox host."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    pid: int
    root: Path

    def path(self, inside: str) -> Path:
        """The path outside for `inside` (an absolute path in the host), via /proc/PID/root.

        Symbolic links on the way are resolved by the kernel from *outside* (an absolute target
        lands in the deployer's file system): use `readlink`/`read_text` for paths through links.
        """
        rel = PurePosixPath(inside)
        if not rel.is_absolute():
            raise ValueError(f"not an absolute path inside the host: {inside!r}")
        return Path(f"/proc/{self.pid}/root").joinpath(*rel.parts[1:])

    def readlink(self, inside: str) -> str | None:
        """Target of the link `inside` the host (not followed), or None if no link/not running."""
        if not self.running():
            return None
        try:
            return os.readlink(self.path(inside))
        except OSError:
            return None

    def resolve(self, inside: str) -> str | None:
        """`inside` with every symbolic link followed the way the host would; None if too deep."""
        pending = list(PurePosixPath(inside).parts[1:])
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = [*done, part]
            try:
                target = os.readlink(self.path("/" + "/".join(candidate)))
            except OSError:
                done = candidate  # not a link (or missing: opening it fails later)
                continue
            links += 1
            if links > 40:
                return None
            target_parts = list(PurePosixPath(target).parts)
            if target.startswith("/"):
                done = []
                target_parts = target_parts[1:]
            pending = target_parts + pending
        return "/" + "/".join(done)

    def read_text(self, inside: str) -> str | None:
        """Contents of the file `inside` the host (links followed inside the host), or None."""
        if not self.running():
            return None
        resolved = self.resolve(inside)
        if resolved is None:
            return None
        try:
            return self.path(resolved).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def running(self) -> bool:
        """Whether this host's process is alive (a zombie is not)."""
        return _is_host_process(self.pid, self.root)

    async def stop(self) -> None:
        """Stop this host and wait until its namespace is gone. Its files are kept."""
        await _stop_host_process(self.pid, self.root, self.name)

    def init_pid(self) -> int | None:
        """Pid (outside) of the host's init, `standin-init`: PID 1 inside; None if not running."""
        if not self.running():
            return None
        children = _children(self.pid)
        return children[0] if len(children) == 1 else None

    def boot_id(self) -> str | None:
        """The host's boot id, as `/proc/sys/kernel/random/boot_id` reads inside it (a new one
        at every boot of the host), or None if it is not running or between boots."""
        text = self.read_text("/proc/sys/kernel/random/boot_id")
        boot_id = text.strip() if text is not None else ""
        return boot_id if boot_id and boot_id != _kernel_boot_id() else None

    async def reboot(self, *, wait: bool = True, timeout: float = READY_TIMEOUT) -> str | None:
        """Reboot the host as `reboot` inside it does (SIGHUP to its init).

        With `wait`, return the new boot id once the host accepts SSH connections again; else
        return at once (None); `wait_booted(after=OLD_BOOT_ID)` waits later.
        """
        before = self.boot_id()
        init = self.init_pid()
        if init is None or before is None:
            raise SandboxError(f"sandbox host {self.name} is not running", host=self.name)
        os.kill(init, signal.SIGHUP)
        if not wait:
            return None
        return await self.wait_booted(after=before, timeout=timeout)

    async def wait_booted(self, *, after: str | None, timeout: float = READY_TIMEOUT) -> str:
        """Wait until the host runs a boot other than the one whose boot id is `after` (None:
        any boot) and accepts SSH connections; return its boot id."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise SandboxError(
                    f"sandbox host {self.name} stopped while rebooting; the end of its log "
                    f"{self.log_file}:\n{_log_tail(self.root)}",
                    host=self.name,
                )
            current = self.boot_id()
            ready = current not in (None, after) and await _banner(self.address, self.port)
            if ready and self.boot_id() == current:
                assert current is not None
                return current
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"sandbox host {self.name} did not come back within {timeout:g} s; the end "
                    f"of its log {self.log_file}:\n{_log_tail(self.root)}",
                    host=self.name,
                )
            await asyncio.sleep(0.02)

    @property
    def log_file(self) -> Path:
        return self.root / "log"


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """A set of sandbox hosts h1…hN sharing a directory, a client key and an ssh_config."""

    directory: Path
    hosts: tuple[SandboxHost, ...]
    ssh_config: Path
    known_hosts: Path
    identity: Path
    port: int = DEFAULT_PORT
    blocks: tuple[int, ...] = ()
    #: the client key's public half (`ssh-ed25519 AAAA… COMMENT`): a system deployed to the
    #: hosts must authorize it (`users.users.root.openssh.authorizedKeys.keys`) to stay reachable
    public_key: str = ""

    def host(self, name: str) -> SandboxHost:
        for host in self.hosts:
            if host.name == name:
                return host
        names = ", ".join(h.name for h in self.hosts) or "none"
        raise SandboxError(
            f"the sandbox in {self.directory} has no host named {name!r}",
            hint=f"its hosts: {names}; `nixlift sandbox up N` starts h1…hN",
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    @property
    def nix_sshopts(self) -> str:
        """Value for NIX_SSHOPTS (Nix splits it at spaces: keep the directory free of them)."""
        return f"-F {self.ssh_config}"

    def ssh_argv(self, host: str, *command: str) -> list[str]:
        """`ssh -F DIR/ssh_config HOST COMMAND…` (COMMAND is run by the host's shell)."""
        return ["ssh", "-F", str(self.ssh_config), host, *command]


@dataclass(frozen=True, kw_only=True)
class HostStatus:
    name: str
    address: str
    port: int
    pid: int
    running: bool
    #: where the host's /run/current-system points (a store path of the host's store), if set
    current_system: str | None


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested)


def host_name(index: int) -> str:
    return f"h{index}"


def host_index(name: str) -> int | None:
    if name.startswith("h") and name[1:].isdigit() and not name[1:].startswith("0"):
        return int(name[1:])
    return None


def blocks_needed(count: int) -> int:
    return -(-count // HOSTS_PER_BLOCK)


def host_address(blocks: Sequence[int], index: int) -> str:
    """Address of host number `index` (1-based): block `(index-1)//250`, host `(index-1)%250+1`."""
    block = blocks[(index - 1) // HOSTS_PER_BLOCK]
    return f"{NETWORK_PREFIX}.{block}.{(index - 1) % HOSTS_PER_BLOCK + 1}"


def address_block(address: str) -> int | None:
    parts = address.split(".")
    if len(parts) == 4 and ".".join(parts[:2]) == NETWORK_PREFIX and parts[2].isdigit():
        return int(parts[2])
    return None


def render_sshd_config(address: str, port: int) -> str:
    """sshd_config of one host (its paths are inside the host)."""
    lines = [
        "# sshd of a nixlift sandbox host, written by `nixlift sandbox up`; paths are inside it",
        f"ListenAddress {address}:{port}",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u",
        "StrictModes yes",
        "KexAlgorithms curve25519-sha256",
        "MaxSessions 64",
        "MaxStartups 100:30:200",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    return "\n".join(lines) + "\n"


def ssh_config_path(path: Path) -> str:
    """`path` as one quoted ssh_config argument with `%` escaped (ssh expands %-tokens)."""
    text = str(path)
    if any(c in text for c in '"\\') or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise SandboxError(
            f"the sandbox path {text!r} cannot be written into an ssh_config",
            hint="choose a sandbox directory without quotes, backslashes or control characters",
        )
    return '"' + text.replace("%", "%%") + '"'


def render_ssh_config(hosts: Iterable[SandboxHost], *, identity: Path, known_hosts: Path) -> str:
    """ssh_config with a block per host (by name) and a final `Host *` for `root@ADDRESS`."""
    common = [
        "  User root",
        f"  IdentityFile {ssh_config_path(identity)}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {ssh_config_path(known_hosts)}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  CheckHostIP no",
        "  UpdateHostKeys no",
        "  BatchMode yes",
        "  ConnectTimeout 10",
        "  LogLevel ERROR",
    ]
    out = [
        "# nixlift sandbox hosts, written by `nixlift sandbox up`: ssh -F THIS_FILE h1",
        "# Host keys are verified against the known_hosts file named below.",
    ]
    for host in hosts:
        out += ["", f"Host {host.name}", f"  HostName {host.address}", f"  Port {host.port}"]
        out += common
    out += ["", "# any sandbox address, e.g. ssh -F THIS_FILE -p PORT root@127.77.B.N", "Host *"]
    out += common
    return "\n".join(out) + "\n"


def known_hosts_line(address: str, port: int, public_key: str, comment: str = "") -> str:
    """`[ADDRESS]:PORT TYPE KEY [COMMENT]` from an OpenSSH public key line."""
    fields = public_key.split()
    if len(fields) < 2:
        raise SandboxError(f"not an OpenSSH public key: {public_key!r}")
    host = address if port == 22 else f"[{address}]:{port}"
    return " ".join([host, fields[0], fields[1], *([comment] if comment else [])])


def render_known_hosts(entries: Iterable[tuple[SandboxHost, str]]) -> str:
    lines = [known_hosts_line(h.address, h.port, key, h.name) for h, key in entries]
    return "".join(line + "\n" for line in lines)


def default_directory() -> Path:
    """`$NIXLIFT_SANDBOX_DIR`, else `${XDG_STATE_HOME:-~/.local/state}/nixlift/sandbox`."""
    explicit = os.environ.get("NIXLIFT_SANDBOX_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "nixlift" / "sandbox"


# ---------------------------------------------------------------------------------------------
# /proc


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state (field 3) on, or None if there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", errors="surrogateescape") for a in raw.split(b"\0")[:-1]]


def process_start(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _proc_stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether `pid` runs (zombies do not) and, given `start`, is still the same process."""
    fields = _proc_stat_fields(pid)
    if not fields or fields[0] in ("Z", "X", "x"):
        return False
    return start is None or (len(fields) >= 20 and int(fields[19]) == start)


def _is_host_process(pid: int, root: Path) -> bool:
    """Whether `pid` is the live `unshare` of the host in `root`."""
    fields = _proc_stat_fields(pid)
    if pid <= 0 or not fields or fields[0] in ("Z", "X", "x"):
        return False
    argv = _proc_cmdline(pid)
    if not argv:
        # Right after exec (and in other short windows) cmdline reads empty: trust the name.
        return _proc_comm(pid) == "unshare"
    return Path(argv[0]).name == "unshare" and str(root) in argv


def _proc_comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def scan_host_processes(directory: Path) -> list[tuple[int, Path]]:
    """(pid, host dir) of every live `unshare` of a host of the sandbox in `directory`."""
    hosts_dir = directory / "hosts"
    found: list[tuple[int, Path]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = _proc_cmdline(pid)
        if not argv or Path(argv[0]).name != "unshare":
            continue
        for arg in argv[1:]:
            if Path(arg).parent == hosts_dir and process_alive(pid):
                found.append((pid, Path(arg)))
                break
    return found


async def _stop_host_process(pid: int, root: Path, name: str) -> None:
    """Stop one host and wait until its namespace is gone (a zombie `unshare` counts as gone).

    `unshare --fork` blocks SIGTERM, so the namespace's init (`standin-init`, its only child) gets
    SIGTERM (it kills every process of the host and exits); then SIGKILL to both (with
    --kill-child, unshare's death SIGKILLs the init too). When a pid namespace's init dies, the
    kernel kills every other process in it.
    """
    start = process_start(pid)
    if start is None or not _is_host_process(pid, root):
        return
    inits = [(child, process_start(child)) for child in _children(pid)]
    rounds = [(signal.SIGTERM, inits)] if inits else []
    rounds.append((signal.SIGKILL, [*inits, (pid, start)]))
    for sig, targets in rounds:
        for target, target_start in targets:
            if process_alive(target, target_start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not process_alive(pid, start):
                return
            await asyncio.sleep(0.01)
    raise SandboxError(
        f"sandbox host {name} (pid {pid}) did not stop",
        hint=f"look at `ps -o pid,stat,cmd --ppid {pid}`; a process in state D may be stuck",
        host=name,
    )


# ---------------------------------------------------------------------------------------------
# Address block claims


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
                            hint=f"stop other sandboxes with `nixlift sandbox down`; claims "
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


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class _Layout:
    directory: Path

    @property
    def state(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def marker(self) -> Path:
        return self.directory / MARKER_FILE

    @property
    def identity(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def init_script(self) -> Path:
        return self.directory / "init.sh"

    @property
    def tools(self) -> Path:
        """DIR/bin: the tools merged into each host's /usr/local/sbin (relative to hosts/hN)."""
        return self.directory / "bin"

    @property
    def lock(self) -> Path:
        return self.directory / ".lock"

    def host_root(self, name: str) -> Path:
        return self.directory / "hosts" / name


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    try:
        if path.read_text(encoding="utf-8") == text and (path.stat().st_mode & 0o7777) == mode:
            return
    except OSError:
        pass
    _write_atomic(path, text, mode)


def _absolute(directory: Path) -> Path:
    return directory.expanduser().resolve()


def _sandbox_from_state(directory: Path, data: dict[str, Any]) -> Sandbox:
    layout = _Layout(directory)
    hosts = tuple(
        SandboxHost(
            name=str(h["name"]),
            address=str(h["address"]),
            port=int(h["port"]),
            pid=int(h["pid"]),
            root=Path(str(h["root"])),
        )
        for h in data["hosts"]
    )
    return Sandbox(
        directory=directory,
        hosts=hosts,
        ssh_config=layout.ssh_config,
        known_hosts=layout.known_hosts,
        identity=layout.identity,
        port=int(data.get("port", DEFAULT_PORT)),
        blocks=tuple(int(b) for b in data.get("blocks", ())),
        public_key=str(data.get("public_key") or _public_key_or_empty(layout.identity)),
    )


def _read_state(directory: Path) -> Sandbox | None:
    path = _Layout(directory).state
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SandboxError(f"cannot read {path}: {e.strerror}") from e
    try:
        data = json.loads(raw)
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        return _sandbox_from_state(directory, data)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SandboxError(
            f"{path} is not a nixlift sandbox state file ({e})",
            hint=f"`nixlift sandbox down --purge` removes the sandbox in {directory}",
        ) from e


def _state_json(sandbox: Sandbox) -> str:
    data = {
        "format": STATE_FORMAT,
        "directory": str(sandbox.directory),
        "port": sandbox.port,
        "blocks": list(sandbox.blocks),
        "ssh_config": str(sandbox.ssh_config),
        "known_hosts": str(sandbox.known_hosts),
        "identity": str(sandbox.identity),
        "public_key": sandbox.public_key,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "port": h.port,
                "pid": h.pid,
                "root": str(h.root),
            }
            for h in sandbox.hosts
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def _log_tail(root: Path, lines: int = 20) -> str:
    try:
        text = (root / "log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    start = text.rfind(_LOG_MARK)
    if start >= 0:
        text = text[text.find("\n", start) + 1 :]
    tail = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the log is empty)"


@contextlib.asynccontextmanager
async def _directory_lock(directory: Path) -> AsyncIterator[None]:
    fd = os.open(_Layout(directory).lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SandboxError(
                        f"another nixlift command keeps the sandbox in {directory} locked",
                        hint="wait for it to finish, or stop it",
                    ) from None
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Processes


async def _run(argv: Sequence[str], what: str) -> proc.Completed:
    try:
        return await proc.run(argv, timeout=60, what=what)
    except CommandError as e:
        detail = f":\n{e.stderr_tail}" if e.stderr_tail else ""
        raise SandboxError(f"{e.message}{detail}", hint=e.hint) from e


def _find_sshd() -> str:
    found = shutil.which("sshd")
    if found is None:
        found = next((p for p in ("/usr/sbin/sshd", "/sbin/sshd") if os.access(p, os.X_OK)), None)
    if found is None:
        raise SandboxError(
            "sshd (OpenSSH's server) was not found",
            hint="install it (on Debian: apt-get install openssh-server)",
        )
    return found


def _preflight() -> str:
    """Check what hosts need; return sshd's absolute path."""
    if os.geteuid() != 0:
        raise SandboxError("sandbox hosts can only be started as root", hint=_ROOT_HINT)
    hints = {
        "unshare": "install util-linux (on Debian: apt-get install util-linux)",
        "mount": "install util-linux (on Debian: apt-get install mount)",
        "ssh": "",
        "ssh-keygen": "",
    }
    for program, hint in hints.items():
        try:
            proc.require_program(program, hint)
        except MissingProgramError as e:
            raise SandboxError(e.message, hint=e.hint) from e
    return _find_sshd()


async def _ensure_route() -> None:
    """Local route with quickack for the sandbox range (saves ~100 ms per SSH connection)."""
    argv = ["ip", "route", "replace", "local", NETWORK, "dev", "lo", "table", "local"]
    argv += ["scope", "host", "quickack", "1"]
    try:
        result = await proc.run(argv, check=False, timeout=10)
    except (CommandError, MissingProgramError) as e:
        log.warning("could not add the quickack route for %s: %s", NETWORK, e)
        return
    if result.returncode != 0:
        log.warning(
            "could not add the quickack route for %s (%s); SSH connections to sandbox hosts "
            "will be slower",
            NETWORK,
            result.stderr_tail(2),
        )


async def _ensure_key(key: Path, comment: str) -> str:
    """Public key line of the ed25519 key pair `key`, `key.pub`; generated if missing."""
    if not _key_pair_present(key):
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)]
        await _run(argv, f"ssh-keygen for {key}")
    return _public_key(key)


def _public_key_path(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def _key_pair_present(key: Path) -> bool:
    """Whether `key` and `key.pub` exist; if only one does, remove it (ssh-keygen would ask)."""
    pub = _public_key_path(key)
    if key.is_file() and pub.is_file():
        return True
    for path in (key, pub):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return False


def _public_key(key: Path) -> str:
    return _public_key_path(key).read_text(encoding="utf-8").strip()


def _public_key_or_empty(key: Path) -> str:
    try:
        return _public_key(key)
    except OSError:
        return ""


def _kernel_boot_id() -> str | None:
    """This machine's boot id (what a sandbox host shows for a moment between two boots)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


async def _prepare_host(root: Path, name: str, address: str, port: int) -> str:
    """Create the host's directory and files; return its public host key."""
    _write_host_files(root, address, port)
    return await _ensure_key(root / "ssh_host_ed25519_key", name)


def _write_host_files(root: Path, address: str, port: int) -> None:
    for sub in ("nix", "etc-upper", "etc-work", "state"):
        (root / sub).mkdir(mode=0o755, parents=True, exist_ok=True)
    home = root / "root"
    home.mkdir(mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    _write_if_changed(root / "sshd_config", render_sshd_config(address, port))


def authorized_keys_line(client_key: str) -> str:
    """The line authorizing the client key `TYPE KEY [COMMENT]` (as `TYPE KEY nixlift-sandbox`)."""
    fields = client_key.split()
    if len(fields) < 2:
        raise SandboxError(f"not an OpenSSH public key: {client_key!r}")
    return f"{fields[0]} {fields[1]} nixlift-sandbox\n"


def _authorizes(root: Path, client_key: str) -> bool:
    """Whether the host in `root` has the client key in its /etc/ssh/authorized_keys.d/root."""
    wanted = client_key.split()[:2]
    try:
        text = (root / "etc-upper" / "ssh" / "authorized_keys.d" / "root").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.split()[:2] == wanted for line in text.splitlines())


def _install_authorized_keys(etc: Path, client_key: str) -> None:
    """`etc/ssh/authorized_keys.d/root` with the client key, unless the file exists already.

    The directory is made opaque in the overlay, so that keys of the real /etc never show
    through into a host. Only while the host is stopped (it is a file of the upper layer).
    """
    keys_dir = etc / "ssh" / "authorized_keys.d"
    if not keys_dir.is_dir():
        keys_dir.mkdir(mode=0o755, parents=True)
        with contextlib.suppress(OSError):
            os.setxattr(keys_dir, "trusted.overlay.opaque", b"y")
    root_keys = keys_dir / "root"
    if not os.path.lexists(root_keys):  # (a whiteout, the file removed inside, counts too)
        _write_atomic(root_keys, authorized_keys_line(client_key), 0o444)


def _check_port_free(address: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise SandboxError(
                    f"{address}:{port} is already in use",
                    hint="another program listens there: stop it, or use another port",
                ) from e
            raise SandboxError(
                f"cannot listen on {address}:{port}: {e.strerror}",
                hint="sandbox hosts need the loopback range 127.0.0.0/8 on `lo`",
            ) from e


def _install_host_etc(root: Path, name: str, client_key: str) -> None:
    """Put the host's sshd_config, host key, name and first authorized key into its /etc (the
    overlay's upper layer).

    Only while the host is stopped: an overlay's layers must not change under a mounted one.
    """
    etc = root / "etc-upper"
    (etc / "ssh").mkdir(mode=0o755, parents=True, exist_ok=True)
    key = root / "ssh_host_ed25519_key"
    for source, target, mode in [
        (root / "sshd_config", etc / "ssh" / "sshd_config", 0o644),
        (key, etc / "ssh" / "ssh_host_ed25519_key", 0o600),
        (_public_key_path(key), etc / "ssh" / "ssh_host_ed25519_key.pub", 0o644),
    ]:
        _write_if_changed(target, source.read_text(encoding="utf-8"), mode)
    _write_if_changed(etc / "hostname", name + "\n")
    _install_authorized_keys(etc, client_key)
    # A sandbox host has no binary cache to reach: without this, a copy with --use-substitutes
    # would have the host ask the public cache for every path first.
    try:
        base = Path("/etc/nix/nix.conf").read_text(encoding="utf-8")
    except OSError:
        base = ""
    (etc / "nix").mkdir(mode=0o755, exist_ok=True)
    _write_if_changed(etc / "nix" / "nix.conf",
                      base + "\n# nixlift sandbox host: no binary cache\nsubstituters =\n"
                      # Builds as root, without build users: the host shares the kernel with
                      # the deployer, whose nix would otherwise kill the host's nixbld1 builds
                      # (and the other way round) when it takes the same build user.
                      "build-users-group =\n")


def _spawn_host(
    init_script: Path, root: Path, name: str, address: str, port: int, sshd: str, client_key: str
) -> int:
    """Start the host in the background; return the pid of its `unshare`.

    No `setsid` in front: spawn_detached already starts a new session, and `setsid` run as a
    process group leader forks, so the pid returned would be that of an exited `setsid`.
    """
    _install_host_etc(root, name, client_key)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with open(root / "log", "a", encoding="utf-8") as out:
        out.write(f"{_LOG_MARK}{name} on {address}:{port} at {stamp} ===\n")
    argv = ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc"]
    argv += ["--propagation", "private", "sh", str(init_script), str(root), name, sshd]
    return proc.spawn_detached(argv, root / "log")


async def _banner(address: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), 2.0)
        return line.startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _wait_ready(host: SandboxHost, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if not host.running():
            raise SandboxError(
                f"sandbox host {host.name} exited while starting; the end of its log "
                f"{host.log_file}:\n{_log_tail(host.root)}",
                hint="fix the cause above; `nixlift sandbox down` stops the other hosts",
                host=host.name,
            )
        if await _banner(host.address, host.port):
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"sandbox host {host.name} did not accept SSH connections on "
                f"{host.address}:{host.port} within {seconds:g} s; the end of its log "
                f"{host.log_file}:\n{_log_tail(host.root)}",
                hint="the machine may be overloaded; `nixlift sandbox down` stops the hosts",
                host=host.name,
            )
        await asyncio.sleep(0.02)


async def _verify_login(sandbox: Sandbox, host: SandboxHost) -> None:
    argv = sandbox.ssh_argv(host.name, "true")
    try:
        result = await proc.run(argv, check=False, timeout=READY_TIMEOUT, host=host.name)
    except CommandError as e:
        raise SandboxError(f"ssh into sandbox host {host.name} timed out", host=host.name) from e
    if result.returncode != 0 and not _authorizes(host.root, sandbox.public_key):
        # Not a fault of the sandbox: the system the host runs dropped the sandbox's key.
        log.warning(
            "sandbox host %s does not authorize the sandbox's key for root (its system's "
            "users.users.root.openssh.authorizedKeys): new SSH connections are refused",
            host.name,
        )
        return
    if result.returncode != 0:
        raise SandboxError(
            f"`{proc.describe(argv)}` failed with exit status {result.returncode}:\n"
            f"{result.stderr_tail()}\nthe end of the host's log:\n{_log_tail(host.root)}",
            hint="this is a bug in nixlift's sandbox if it persists; "
            "`nixlift sandbox down --purge` starts over",
            host=host.name,
        )


async def _gather_limited(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int = 16) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


# ---------------------------------------------------------------------------------------------
# Public API


def _create_directory(layout: _Layout) -> None:
    (layout.directory / "hosts").mkdir(parents=True, exist_ok=True)
    marker = "a nixlift sandbox (`nixlift sandbox down --purge` removes it)\n"
    _write_if_changed(layout.marker, marker)
    Path(STATE_MOUNT).mkdir(parents=True, exist_ok=True)  # the hosts' mountpoint, on the real fs


#: the programs init.sh is, by the name it runs as, in DIR/bin (on each host's PATH)
HOST_TOOLS = ("standin-init", "reboot", "standin-bootctl")


def _install_init_script(layout: _Layout) -> None:
    script = resources.files("nixlift.sandbox").joinpath("init.sh").read_text("utf-8")
    _write_if_changed(layout.init_script, script)
    layout.tools.mkdir(mode=0o755, exist_ok=True)
    for tool in HOST_TOOLS:
        _write_if_changed(layout.tools / tool, script, 0o755)


def load(directory: Path) -> Sandbox:
    """The sandbox recorded in `directory` (its hosts may or may not run)."""
    directory = _absolute(directory)
    sandbox = _read_state(directory)
    if sandbox is None:
        raise SandboxError(
            f"there is no sandbox in {directory}",
            hint="start one with `nixlift sandbox up N` (N hosts)",
        )
    return sandbox


async def up(
    directory: Path,
    count: int,
    *,
    port: int = DEFAULT_PORT,
    claims: BlockClaims | None = None,
) -> Sandbox:
    """Make hosts h1…hCOUNT of the sandbox in `directory` run, and return the sandbox.

    Idempotent: running hosts are kept (same pid, same address), missing ones started (with the
    /nix, /etc and home they had before), hosts above COUNT stopped (their files are kept).
    Returns when every host accepts SSH connections.
    """
    if not 1 <= count <= MAX_HOSTS:
        raise SandboxError(
            f"a sandbox has 1 to {MAX_HOSTS} hosts, not {count}",
            hint=f"hosts beyond {HOSTS_PER_BLOCK} take further address blocks",
        )
    if not 1 <= port <= 65535:
        raise SandboxError(f"{port} is not a TCP port")
    sshd = _preflight()
    directory = _absolute(directory)
    layout = _Layout(directory)
    ssh_config_path(directory)  # fail early on a path ssh cannot be told about
    _create_directory(layout)
    claims = claims or BlockClaims()

    async with _directory_lock(directory):
        await _ensure_route()
        _install_init_script(layout)
        client_key = await _ensure_key(layout.identity, "nixlift-sandbox-client")
        previous = _read_state(directory)

        running = {h.name: h for h in (previous.hosts if previous else ()) if h.running()}
        # Hosts of this directory that the state does not know (an interrupted `up`) go first.
        known = {h.pid for h in running.values()}
        strays = [(pid, root) for pid, root in scan_host_processes(directory) if pid not in known]
        await asyncio.gather(*(_stop_host_process(p, r, r.name) for p, r in strays))

        prefer = previous.blocks if previous else ()
        blocks = claims.acquire(directory, blocks_needed(count), prefer)
        claims.release(directory, [b for b in prefer if b not in blocks])

        wanted = [(host_name(i), host_address(blocks, i)) for i in range(1, count + 1)]
        keep: dict[str, SandboxHost] = {}
        stop: list[SandboxHost] = []
        for name, address in wanted:
            host = running.pop(name, None)
            if host is None:
                continue
            if host.address == address and host.port == port:
                keep[name] = host
            else:
                stop.append(host)
        stop += running.values()  # hosts above COUNT
        await asyncio.gather(*(h.stop() for h in stop))

        to_start = [(n, a) for n, a in wanted if n not in keep]
        public_keys = await _gather_limited(
            [
                functools.partial(_prepare_host, layout.host_root(n), n, a, port)
                for n, a in wanted
            ]
        )
        for _, address in to_start:
            _check_port_free(address, port)
        started: dict[str, SandboxHost] = {}
        for name, address in to_start:
            root = layout.host_root(name)
            pid = _spawn_host(layout.init_script, root, name, address, port, sshd, client_key)
            started[name] = SandboxHost(name=name, address=address, port=port, pid=pid, root=root)

        hosts = tuple(keep.get(name) or started[name] for name, _ in wanted)
        sandbox = Sandbox(
            directory=directory,
            hosts=hosts,
            ssh_config=layout.ssh_config,
            known_hosts=layout.known_hosts,
            identity=layout.identity,
            port=port,
            blocks=blocks,
            public_key=client_key,
        )
        _write_atomic(layout.state, _state_json(sandbox))
        _write_atomic(layout.known_hosts, render_known_hosts(zip(hosts, public_keys, strict=True)))
        config = render_ssh_config(hosts, identity=layout.identity, known_hosts=layout.known_hosts)
        _write_atomic(layout.ssh_config, config)

        begun = time.monotonic()
        await asyncio.gather(*(_wait_ready(h, READY_TIMEOUT) for h in started.values()))
        if started:
            await _verify_login(sandbox, next(iter(started.values())))
            log.info(
                "sandbox %s: started %d host(s), kept %d, ready in %.2f s",
                directory,
                len(started),
                len(keep),
                time.monotonic() - begun,
            )
        return sandbox


async def down(directory: Path, *, purge: bool = False, claims: BlockClaims | None = None) -> None:
    """Stop every host of the sandbox in `directory`, wait until gone, release its blocks.

    Files are kept (a later `up` reuses each host's /nix) unless `purge`, which removes the
    directory (only if it holds a sandbox).
    """
    directory = _absolute(directory)
    claims = claims or BlockClaims()
    if directory.is_dir():
        async with _directory_lock(directory):
            try:
                state = _read_state(directory)
            except SandboxError as e:
                log.warning("%s; stopping the hosts found running instead", e)
                state = None
            targets = {h.pid: (h.root, h.name) for h in (state.hosts if state else ())}
            for pid, root in scan_host_processes(directory):
                targets.setdefault(pid, (root, root.name))
            await asyncio.gather(
                *(_stop_host_process(pid, root, name) for pid, (root, name) in targets.items())
            )
            claims.release(directory)
    else:
        claims.release(directory)
    if not purge or not directory.exists():
        return
    if not _Layout(directory).marker.is_file():
        log.warning("not removing %s: it does not hold a nixlift sandbox", directory)
        return
    try:
        shutil.rmtree(directory)
    except OSError as e:
        raise SandboxError(
            f"cannot remove the sandbox directory {directory}: {e}",
            hint="its hosts are stopped; remove the directory by hand",
        ) from e


async def status(directory: Path) -> list[HostStatus]:
    """Every host of the sandbox in `directory`: address, pid, running, /run/current-system."""
    sandbox = load(directory)
    result: list[HostStatus] = []
    for host in sandbox.hosts:
        running = host.running()
        result.append(
            HostStatus(
                name=host.name,
                address=host.address,
                port=host.port,
                pid=host.pid,
                running=running,
                current_system=host.readlink("/run/current-system") if running else None,
            )
        )
    return result
