"""Sandbox hosts: local stand-ins for NixOS machines, reached over SSH on loopback.

Each host is an sshd under its own init (`standin-init`, PID 1 of its own mount, pid and uts
namespaces; see `init.sh`), with its own `/nix` (store and profiles), `/run` (tmpfs, fresh at
each boot), `/etc` (an overlay on the real one), `/root` (an empty home), `/home` and
`/var/lib/standin` (a state directory), so a deployer can copy closures to it and activate them
as on a separate machine. Hosts listen on `127.77.B.N:PORT`.

As on NixOS, the host's sshd takes authorized keys only from `/etc/ssh/authorized_keys.d/%u`,
which the deployed system manages (`services.openssh.enable` and `users.users.<user>.openssh.
authorizedKeys.keys` of the stand-in nixpkgs). When a host starts and has no
`/etc/ssh/authorized_keys.d/USER` yet for root, deploy or admin, `up` puts the sandbox's client
key there (as an installer would); after that, what the host's last activation wrote stays.

Users besides root, for deploys as a user who is not root (`nixlift_testbed.users`), on every
host, in its own /etc (passwd, group, shadow, sudoers.d/nixlift-sandbox) with homes in its own
/home, both logging in with the client key:

    deploy   sudo without a password (`deploy ALL=(ALL) NOPASSWD: ALL`)
             `Sandbox.deploy_user`, DEPLOY_USER
    admin    sudo with the password ADMIN_PASSWORD, "nixlift-test-password"
             (`admin ALL=(ALL) ALL`)
             `Sandbox.admin_user`, `Sandbox.admin_password`, ADMIN_USER

Neither is a trusted Nix user. Each host runs its own nix-daemon as root (started by its init at
every boot, before sshd; socket `/nix/var/nix/daemon-socket/socket` of the host's /nix), so that
they use the host's store through it as on NixOS (`nix-store -q`, `--check-validity`, …); root
uses the store directly. `Sandbox.ssh_argv(host, command, user=sandbox.deploy_user)` logs in
as one of them. A system deployed to the hosts that declares keys for them
(`users.users.deploy.openssh.authorizedKeys.keys`) must keep the client key to stay reachable.

Reboots: `reboot` inside a host, or `SandboxHost.reboot()` from outside, ends every process of
the host (its sshd and sessions) and boots it again within a second or so: same address, /nix,
/etc and state, a fresh /run, a new `/proc/sys/kernel/random/boot_id` (as seen inside), and the
stand-in bootloader's entry activated (`$state/boot-once` once, else `$state/boot-default`;
`standin-bootctl` inside the host sets them). The host's `pid` (its `unshare`) stays the same.

Boot loader: as on NixOS with systemd-boot, `bootctl is-installed`, `bootctl set-default ENTRY`
and `bootctl set-oneshot ENTRY` work inside a host, ENTRY being `nixos-generation-N.conf`: the
system of `/nix/var/nix/profiles/system-N-link`. This `bootctl` writes the stand-in bootloader's
records (as `standin-bootctl set-default|set-oneshot PATH`), so a deployer drives a sandbox host
the way it drives a real NixOS machine (see `init.sh`).

Layout of a sandbox directory:

    state.json            the state (hosts, addresses, pids, blocks), human-readable
    ssh_config            `ssh -F DIR/ssh_config h1` (host keys verified against known_hosts)
    known_hosts           `[127.77.B.N]:PORT ssh-ed25519 …` for every host
    id_ed25519(.pub)      the client key, authorised for root, deploy and admin on every host
    init.sh               a copy of the package's init script (what the hosts run)
    bin/                  standin-init, reboot, standin-bootctl, bootctl: copies of init.sh,
                          which acts by the name it runs as; merged into each host's
                          /usr/local/sbin
    hosts/hN/             nix/ etc-upper/ etc-work/ root/ home/ state/ log sshd_config
                          ssh_host_ed25519_key(.pub)

Address blocks: several sandboxes may run at once (one per pytest-xdist worker or test). Each
claims whole /24 blocks `127.77.B.0/24` (B in 1..250, hosts .1 to .250) with a claim file
`CLAIMS_DIR/B.claim` created with O_EXCL; a sandbox of more than 250 hosts claims several blocks
(host h251 is the first host of its second block). A claim is stale, and may be taken over, when
none of its sandbox's hosts in that block runs and its claimer is gone (or claimed it more than
`CLAIM_GRACE` seconds ago).

Processes: the long-lived host processes start through `nixlift.proc.spawn_detached` (they must
outlive `nixlift-sandbox up`); everything else through `nixlift.proc.run`. A host's `pid` is that
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from nixlift import proc
from nixlift.errors import CommandError, MissingProgramError
from nixlift_testbed import link as links
from nixlift_testbed.addresses import FIRST_BLOCK as FIRST_BLOCK
from nixlift_testbed.addresses import HOSTS_PER_BLOCK as HOSTS_PER_BLOCK
from nixlift_testbed.addresses import LAST_BLOCK as LAST_BLOCK
from nixlift_testbed.addresses import MAX_HOSTS as MAX_HOSTS
from nixlift_testbed.addresses import NETWORK as NETWORK
from nixlift_testbed.addresses import NETWORK_PREFIX as NETWORK_PREFIX
from nixlift_testbed.addresses import address_block as address_block
from nixlift_testbed.addresses import blocks_needed as blocks_needed
from nixlift_testbed.addresses import host_address as host_address
from nixlift_testbed.addresses import host_index as host_index
from nixlift_testbed.addresses import host_name as host_name
from nixlift_testbed.claims import CLAIM_GRACE as CLAIM_GRACE
from nixlift_testbed.claims import CLAIMS_DIR as CLAIMS_DIR
from nixlift_testbed.claims import BlockClaims as BlockClaims
from nixlift_testbed.claims import Claim as Claim
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.files import _host_etc_text as _host_etc_text
from nixlift_testbed.files import _write_atomic as _write_atomic
from nixlift_testbed.files import _write_if_changed as _write_if_changed
from nixlift_testbed.keys import _authorizes as _authorizes
from nixlift_testbed.keys import _ensure_key as _ensure_key
from nixlift_testbed.keys import _install_authorized_keys as _install_authorized_keys
from nixlift_testbed.keys import _public_key_or_empty as _public_key_or_empty
from nixlift_testbed.keys import _public_key_path as _public_key_path
from nixlift_testbed.keys import authorized_keys_line as authorized_keys_line
from nixlift_testbed.link import Link, rate_bits
from nixlift_testbed.processes import STOP_TIMEOUT as STOP_TIMEOUT
from nixlift_testbed.processes import _children as _children
from nixlift_testbed.processes import _is_host_process as _is_host_process
from nixlift_testbed.processes import _kernel_boot_id as _kernel_boot_id
from nixlift_testbed.processes import _stop_host_process as _stop_host_process
from nixlift_testbed.processes import process_alive as process_alive
from nixlift_testbed.processes import process_start as process_start
from nixlift_testbed.processes import scan_host_processes as scan_host_processes
from nixlift_testbed.render import known_hosts_line as known_hosts_line
from nixlift_testbed.render import render_etc_hosts as render_etc_hosts
from nixlift_testbed.render import render_known_hosts as render_known_hosts
from nixlift_testbed.render import render_ssh_config as render_ssh_config
from nixlift_testbed.render import render_sshd_config as render_sshd_config
from nixlift_testbed.render import ssh_config_path as ssh_config_path
from nixlift_testbed.users import ADMIN_PASSWORD as ADMIN_PASSWORD
from nixlift_testbed.users import ADMIN_USER as ADMIN_USER
from nixlift_testbed.users import DEPLOY_USER as DEPLOY_USER
from nixlift_testbed.users import LOGINS as LOGINS
from nixlift_testbed.users import USERS as USERS
from nixlift_testbed.users import install_users as install_users

log = logging.getLogger("nixlift_testbed")

T = TypeVar("T")

#: port every sandbox host's sshd listens on unless `up(port=…)` says otherwise
DEFAULT_PORT = 2222
#: seconds a new host has to accept SSH connections
READY_TIMEOUT = 15.0
#: seconds to wait for another `nixlift-sandbox` (or test) holding the sandbox directory's lock
LOCK_TIMEOUT = 120.0

STATE_FILE = "state.json"
MARKER_FILE = ".nixlift-sandbox"
STATE_FORMAT = 1
#: inside each host: its state directory
STATE_MOUNT = "/var/lib/standin"

_LOG_MARK = "=== nixlift sandbox: starting "
_ROOT_HINT = (
    "sandbox hosts need root (mount and pid namespaces): run nixlift-sandbox as root or with sudo"
)


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
    #: the shaped link the hosts are behind (`up(…, shaped=RATE)`), or None: on loopback
    link: Link | None = None
    #: the client key's public half (`ssh-ed25519 AAAA… COMMENT`): a system deployed to the
    #: hosts must authorize it (`users.users.root.openssh.authorizedKeys.keys`) to stay reachable
    public_key: str = ""
    #: a user on every host, not root, with passwordless sudo (`deploy ALL=(ALL) NOPASSWD: ALL`);
    #: logs in with the client key, as root does (`ssh_argv(host, …, user=deploy_user)`)
    deploy_user: str = DEPLOY_USER
    #: a user on every host, not root, whose sudo asks for `admin_password`
    #: (`admin ALL=(ALL) ALL`); logs in with the client key too
    admin_user: str = ADMIN_USER
    #: admin's password (for `sudo -S`)
    admin_password: str = ADMIN_PASSWORD

    def host(self, name: str) -> SandboxHost:
        for host in self.hosts:
            if host.name == name:
                return host
        names = ", ".join(h.name for h in self.hosts) or "none"
        raise SandboxError(
            f"the sandbox in {self.directory} has no host named {name!r}",
            hint=f"its hosts: {names}; `nixlift-sandbox up N` starts h1…hN",
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    @property
    def nix_sshopts(self) -> str:
        """Value for NIX_SSHOPTS (Nix splits it at spaces: keep the directory free of them)."""
        return f"-F {self.ssh_config}"

    def ssh_argv(self, host: str, *command: str, user: str | None = None) -> list[str]:
        """`ssh -F DIR/ssh_config [-l USER] HOST COMMAND…` (COMMAND is run by the host's shell;
        the user is root unless `user` says otherwise, e.g. `deploy_user`)."""
        login = ["-l", user] if user is not None else []
        return ["ssh", "-F", str(self.ssh_config), *login, host, *command]


@dataclass(frozen=True, kw_only=True)
class HostStatus:
    name: str
    address: str
    port: int
    pid: int
    running: bool
    #: where the host's /run/current-system points (a store path of the host's store), if set
    current_system: str | None


def default_directory() -> Path:
    """`$NIXLIFT_SANDBOX_DIR`, else `${XDG_STATE_HOME:-~/.local/state}/nixlift/sandbox`."""
    explicit = os.environ.get("NIXLIFT_SANDBOX_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "nixlift" / "sandbox"


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
        link=Link.from_json(data.get("link")),
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
            hint=f"`nixlift-sandbox down --purge` removes the sandbox in {directory}",
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
        "link": sandbox.link.to_json() if sandbox.link else None,
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
                        f"another nixlift-sandbox command keeps the sandbox in {directory} locked",
                        hint="wait for it to finish, or stop it",
                    ) from None
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Processes


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


async def _set_link(old: Link | None, new: Link | None, blocks: Sequence[int]) -> None:
    """After the hosts that change were stopped: the link the sandbox is to have, made,
    changed (its rate) or removed; and whatever a crashed run left under the names of blocks
    now ours."""
    if old is not None and (new is None or old.blocks != new.blocks):
        await links.remove(old)
    if new is not None and old is not None and old.blocks == new.blocks and old.netns_path.exists():
        if old.rate != new.rate:
            await links.shape(new)
    elif new is not None:
        await links.create(new)
    for block in blocks:
        stale = Link("1bit", (block,))
        if stale.netns_path.exists() and (new is None or block != new.block):
            await links.remove(stale)


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


def _install_host_etc(root: Path, name: str, address: str, client_key: str) -> None:
    """Put the host's sshd_config, host key, name (hostname, hosts), users (deploy and admin,
    with their sudo rules and homes) and first authorized keys into its /etc (the overlay's
    upper layer).

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
    hosts = render_etc_hosts(_host_etc_text(etc / "hosts", Path("/etc/hosts")), address, name)
    _write_if_changed(etc / "hosts", hosts)
    install_users(etc, root / "home")
    _install_authorized_keys(etc, client_key, LOGINS)
    # A sandbox host has no binary cache to reach: without this, a copy with --use-substitutes
    # would have the host ask the public cache for every path first.
    try:
        base = Path("/etc/nix/nix.conf").read_text(encoding="utf-8")
    except OSError:
        base = ""
    (etc / "nix").mkdir(mode=0o755, exist_ok=True)
    _write_if_changed(
        etc / "nix" / "nix.conf",
        base + "\n# nixlift sandbox host: no binary cache\nsubstituters =\n"
        # Builds as root, without build users: the host shares the kernel with
        # the deployer, whose nix would otherwise kill the host's nixbld1 builds
        # (and the other way round) when it takes the same build user.
        "build-users-group =\n",
    )


def _spawn_host(
    init_script: Path,
    root: Path,
    name: str,
    address: str,
    port: int,
    sshd: str,
    client_key: str,
    link: Link | None,
) -> int:
    """Start the host in the background; return the pid of its `unshare`.

    No `setsid` in front: spawn_detached already starts a new session, and `setsid` run as a
    process group leader forks, so the pid returned would be that of an exited `setsid`.
    """
    _install_host_etc(root, name, address, client_key)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with open(root / "log", "a", encoding="utf-8") as out:
        out.write(f"{_LOG_MARK}{name} on {address}:{port} at {stamp} ===\n")
    argv = ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc"]
    argv += ["--propagation", "private", "sh", str(init_script), str(root), name, sshd]
    if link is not None:  # nsenter execs unshare: the pid stays the host's
        argv = link.enter(argv)
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
                hint="fix the cause above; `nixlift-sandbox down` stops the other hosts",
                host=host.name,
            )
        if await _banner(host.address, host.port):
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"sandbox host {host.name} did not accept SSH connections on "
                f"{host.address}:{host.port} within {seconds:g} s; the end of its log "
                f"{host.log_file}:\n{_log_tail(host.root)}",
                hint="the machine may be overloaded; `nixlift-sandbox down` stops the hosts",
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
            hint="this is a bug in the nixlift test bed if it persists; "
            "`nixlift-sandbox down --purge` starts over",
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
    marker = "a nixlift sandbox (`nixlift-sandbox down --purge` removes it)\n"
    _write_if_changed(layout.marker, marker)
    # the hosts' mountpoints, on the real fs
    Path(STATE_MOUNT).mkdir(parents=True, exist_ok=True)
    Path("/home").mkdir(mode=0o755, exist_ok=True)


#: the programs init.sh is, by the name it runs as, in DIR/bin (on each host's PATH); `bootctl`
#: is systemd-boot's command as nixlift uses it on NixOS, over the stand-in bootloader
HOST_TOOLS = ("standin-init", "reboot", "standin-bootctl", "bootctl")


def _install_init_script(layout: _Layout) -> None:
    script = resources.files("nixlift_testbed").joinpath("init.sh").read_text("utf-8")
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
            hint="start one with `nixlift-sandbox up N` (N hosts)",
        )
    return sandbox


async def up(
    directory: Path,
    count: int,
    *,
    port: int = DEFAULT_PORT,
    claims: BlockClaims | None = None,
    shaped: str | None = None,
) -> Sandbox:
    """Make hosts h1…hCOUNT of the sandbox in `directory` run, and return the sandbox.

    Idempotent: running hosts are kept (same pid, same address), missing ones started (with the
    /nix, /etc and home they had before), hosts above COUNT stopped (their files are kept).
    Returns when every host accepts SSH connections.

    `shaped`: a rate (tc's, e.g. "10mbit"): the hosts are behind a link limited to it each
    way, in a network namespace of their own, on 10.177.B.N (`nixlift_testbed.link`).
    """
    if not 1 <= count <= MAX_HOSTS:
        raise SandboxError(
            f"a sandbox has 1 to {MAX_HOSTS} hosts, not {count}",
            hint=f"hosts beyond {HOSTS_PER_BLOCK} take further address blocks",
        )
    if not 1 <= port <= 65535:
        raise SandboxError(f"{port} is not a TCP port")
    if shaped is not None:
        rate_bits(shaped)
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

        link = Link(shaped, blocks) if shaped is not None else None
        old_link = previous.link if previous else None
        # hosts in the namespace of a link that goes (or moves to other blocks) start again
        relinked = old_link is not None and (link is None or old_link.blocks != link.blocks)
        wanted = [
            (host_name(i), host_address(blocks, i, shaped=link is not None))
            for i in range(1, count + 1)
        ]
        keep: dict[str, SandboxHost] = {}
        stop: list[SandboxHost] = []
        for name, address in wanted:
            host = running.pop(name, None)
            if host is None:
                continue
            if host.address == address and host.port == port and not relinked:
                keep[name] = host
            else:
                stop.append(host)
        stop += running.values()  # hosts above COUNT
        await asyncio.gather(*(h.stop() for h in stop))
        await _set_link(old_link, link, blocks)

        to_start = [(n, a) for n, a in wanted if n not in keep]
        public_keys = await _gather_limited(
            [functools.partial(_prepare_host, layout.host_root(n), n, a, port) for n, a in wanted]
        )
        for _, address in to_start:
            if link is None:  # (a shaped link's namespace is new, or holds only our hosts)
                _check_port_free(address, port)
        started: dict[str, SandboxHost] = {}
        for name, address in to_start:
            root = layout.host_root(name)
            pid = _spawn_host(layout.init_script, root, name, address, port, sshd, client_key, link)
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
            link=link,
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
            if state is not None and state.link is not None:
                await links.remove(state.link)
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
