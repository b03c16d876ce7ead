import shlex
from pathlib import Path

import pytest

from nixlift.model import DeploymentOptions, Machine
from nixlift.transport.elevate import Elevation, Password
from nixlift.transport.ssh import (
    SshHost,
    SshTarget,
    copy_hint,
    diagnose,
    remote_command,
    single_words,
)


def machine(**deployment: object) -> Machine:
    d = DeploymentOptions(target_host="pi.lan", **deployment)  # type: ignore[arg-type]
    return Machine("pi", "aarch64-linux", "aarch64-linux", d, "/nix/store/x.drv", "/nix/store/x")


def test_target_from_deployment_options() -> None:
    t = SshTarget.for_machine(machine(target_port=2222, ssh_options=("-F", "/c f")))
    assert t.destination == "root@pi.lan"
    argv = t.ssh_argv("true")
    assert argv[:3] == ["ssh", "-T", "-x"]
    assert argv[-3:] == ["--", "root@pi.lan", "true"]
    assert argv[argv.index("-p") : argv.index("-p") + 2] == ["-p", "2222"]
    assert argv[argv.index("-F") + 1] == "/c f"


def test_non_root_user_elevates() -> None:
    host = SshHost.for_machine(machine(target_user="deploy"), Path("/tmp/nl-x/0"))
    assert host.target.destination == "deploy@pi.lan"
    assert host.elevation.command == ("sudo", "-H", "--")
    # sudo never prompts where nobody could answer: -n, or -S with the password on stdin
    assert host.elevation.wrap(["true"]) == ["sudo", "-n", "-H", "--", "true"]
    assert host.elevation.stdin_prefix() == b""
    assert SshHost.for_machine(machine(), Path("/x")).elevation == Elevation()
    assert SshTarget.for_machine(machine(target_user=None)).destination == "pi.lan"


def test_elevation_strategies() -> None:
    secret = Password("s3cret pass")
    sudo = Elevation.for_user("pi", ("sudo", "-H", "--"), secret)
    assert sudo.wrap(["id"]) == ["sudo", "-S", "-p", "", "-H", "--", "id"]
    assert sudo.stdin_prefix() == b"s3cret pass\n"
    assert "s3cret" not in repr(sudo)
    assert Elevation.for_user("pi", ("doas",)).wrap(["id"]) == ["doas", "-n", "id"]
    assert Elevation.for_user("pi", ("run0",)).wrap(["id"]) == ["run0", "--no-ask-password", "id"]
    custom = Elevation.for_user("pi", ("/usr/local/bin/become", "root"))
    assert custom.wrap(["id"]) == ["/usr/local/bin/become", "root", "id"]
    assert Elevation.for_user("root", ("sudo",)).wrap(["id"]) == ["id"]


def test_control_master_options_reach_nix_sshopts_without_whitespace_words() -> None:
    t = SshTarget(
        "pi", "pi.lan", 2222, "root", ("-F", "/c f", "-i", "/k"), control_path=Path("/tmp/nl-x/0")
    )
    opts = t.nix_sshopts().split()
    assert "-oControlPath=/tmp/nl-x/0" in opts and "-oControlMaster=auto" in opts
    assert "-oBatchMode=yes" in opts and "-p2222" in opts
    assert "/c f" not in t.nix_sshopts()
    # the flag went with its value: nothing left to swallow the next option
    assert "-F" not in opts and "-i/k" in opts


def test_ssh_config_spelling_reaches_nix_sshopts_as_one_word() -> None:
    t = SshTarget(
        "pi",
        "pi.lan",
        None,
        "root",
        ("-o", "ServerAliveCountMax 3", "-o", "User = admin", "-oProxyCommand=ssh -W %h:%p j"),
    )
    opts = t.nix_sshopts().split()
    assert "-oServerAliveCountMax=3" in opts and "-oUser=admin" in opts
    assert not any("ProxyCommand" in o or o == "-o" for o in opts)
    assert single_words(["-o", "A=b", "-T", "-l", "me"]) == ["-oA=b", "-T", "-lme"]


def test_the_users_ssh_options_come_before_nixlifts_defaults() -> None:
    # ssh takes the first value of an option: the user's ConnectTimeout wins over ours
    t = SshTarget(
        "pi", "pi.lan", None, "root", ("-o", "ConnectTimeout=3"), control_path=Path("/tmp/nl-x/0")
    )
    args = t.option_args()
    assert args.index("ConnectTimeout=3") < args.index("ConnectTimeout=10")
    # but the master connection nixlift relies on is named first
    assert args.index("ControlPath=/tmp/nl-x/0") < args.index("ConnectTimeout=3")
    fresh = t.fresh_argv("true")
    assert fresh[1:7] == ["-T", "-x", "-o", "ControlPath=none", "-o", "ControlMaster=no"]
    assert "ControlPath=/tmp/nl-x/0" not in fresh


def test_remote_command_quotes_every_word() -> None:
    cmd = remote_command(["sh", "-c", "echo $1; rm -rf /", "x", "a b;c"])
    assert shlex.split(cmd) == ["sh", "-c", "echo $1; rm -rf /", "x", "a b;c"]


def test_diagnose_names_the_cause() -> None:
    assert "sshd running" in diagnose("ssh: connect to host h port 22: Connection refused")
    assert "did not answer" in diagnose("ssh: connect to host h port 22: Connection timed out")
    assert "known_hosts" in diagnose("Host key verification failed.")
    assert "authentication" in diagnose("root@h: Permission denied (publickey).")


def test_compression_is_the_master_connections() -> None:
    t = SshTarget.for_machine(machine(compress=True))
    assert "Compression=yes" in t.option_args()
    assert "Compression=yes" in SshTarget.for_machine(machine(), compress=True).master_argv()
    assert "Compression=yes" not in SshTarget.for_machine(machine()).option_args()


@pytest.mark.parametrize(
    ("said", "hint"),
    [
        ("error: writing to file: No space left on device", "disk is full"),
        (
            "error: path '/nix/store/x' is not valid\ncannot add path: lacks a valid signature",
            "not trusted",
        ),
        ("bash: nix-daemon: command not found", "nix was not found"),
        ("sudo: a password is required", "--ask-sudo-password"),
        ("ssh: connect to host pi port 22: Connection refused", "nothing accepts SSH"),
        ("client_loop: send disconnect: Broken pipe", "connection broke"),
        ("error: something else entirely", "nix's own message"),
    ],
)
def test_a_failed_copys_hint_follows_what_was_said(said: str, hint: str) -> None:
    assert hint in copy_hint(said)
    assert "free space" not in copy_hint("ssh: connect to host pi port 22: Connection refused")
