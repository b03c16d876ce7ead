"""Text of the sandbox's sshd_config, ssh_config and known_hosts (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from nixlift_testbed.errors import SandboxError

if TYPE_CHECKING:
    from nixlift_testbed.hosts import SandboxHost


def render_sshd_config(address: str, port: int) -> str:
    """sshd_config of one host (its paths are inside the host)."""
    lines = [
        "# sshd of a nixlift sandbox host, written by `nixlift-sandbox up`; paths are inside it",
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


#: ends the line of /etc/hosts that names the host itself
_HOSTS_MARK = "# nixlift sandbox host"


def render_etc_hosts(base: str, address: str, name: str) -> str:
    """`base` (the host's /etc/hosts) with a line naming the host itself, as NixOS has one:
    sudo looks its host's name up and says so on every call when it cannot find it."""
    lines = [line for line in base.splitlines() if not line.endswith(_HOSTS_MARK)]
    return "".join(line + "\n" for line in [*lines, f"{address} {name}  {_HOSTS_MARK}"])


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
        "# nixlift sandbox hosts, written by `nixlift-sandbox up`: ssh -F THIS_FILE h1",
        "# Host keys are verified against the known_hosts file named below.",
    ]
    for host in hosts:
        out += ["", f"Host {host.name}", f"  HostName {host.address}", f"  Port {host.port}"]
        out += common
    out += ["", "# any sandbox address, e.g. ssh -F THIS_FILE -p PORT root@127.77.B.N", "Host *"]
    out += common
    return "\n".join(out) + "\n"


def host_key_alias(address: str, port: int) -> str:
    """The name a host's key has in the sandbox's known_hosts: `[ADDRESS]:PORT` (`ADDRESS` on
    port 22), as ssh looks it up. `-o HostKeyAlias=THIS` makes ssh look it up under this name
    when it connects elsewhere (a proxy in front of the host)."""
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts_line(address: str, port: int, public_key: str, comment: str = "") -> str:
    """`[ADDRESS]:PORT TYPE KEY [COMMENT]` from an OpenSSH public key line."""
    fields = public_key.split()
    if len(fields) < 2:
        raise SandboxError(f"not an OpenSSH public key: {public_key!r}")
    host = host_key_alias(address, port)
    return " ".join([host, fields[0], fields[1], *([comment] if comment else [])])


def render_known_hosts(entries: Iterable[tuple[SandboxHost, str]]) -> str:
    lines = [known_hosts_line(h.address, h.port, key, h.name) for h, key in entries]
    return "".join(line + "\n" for line in lines)
