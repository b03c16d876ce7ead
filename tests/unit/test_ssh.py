import shlex
from pathlib import Path

from nixlift.model import DeploymentOptions, Machine
from nixlift.transport.ssh import SshTarget, diagnose, remote_command


def machine(**deployment: object) -> Machine:
    d = DeploymentOptions(target_host="pi.lan", **deployment)  # type: ignore[arg-type]
    return Machine("pi", "aarch64-linux", "aarch64-linux", d, "/nix/store/x.drv", "/nix/store/x")


def test_target_from_deployment_options() -> None:
    t = SshTarget.for_machine(machine(target_port=2222, ssh_options=("-F", "/c f")))
    assert t.destination == "root@pi.lan"
    assert t.elevate == ()
    argv = t.ssh_argv("true")
    assert argv[:3] == ["ssh", "-T", "-x"]
    assert argv[-3:] == ["--", "root@pi.lan", "true"]
    assert argv[argv.index("-p"): argv.index("-p") + 2] == ["-p", "2222"]
    assert argv[argv.index("-F") + 1] == "/c f"


def test_non_root_user_elevates() -> None:
    t = SshTarget.for_machine(machine(target_user="deploy"))
    assert t.destination == "deploy@pi.lan"
    assert t.elevate == ("sudo", "-H", "--")
    assert SshTarget.for_machine(machine(target_user=None)).destination == "pi.lan"


def test_control_master_options_reach_nix_sshopts_without_whitespace_words() -> None:
    t = SshTarget("pi", "pi.lan", 2222, "root", ("-F", "/c f", "-i", "/k"),
                  control_path=Path("/tmp/nl-x/0"))
    opts = t.nix_sshopts().split()
    assert "ControlPath=/tmp/nl-x/0" in opts and "ControlMaster=auto" in opts
    assert "BatchMode=yes" in opts and "-p" in opts and "/k" in opts
    assert "/c f" not in t.nix_sshopts()


def test_remote_command_quotes_every_word() -> None:
    cmd = remote_command(["sh", "-c", "echo $1; rm -rf /", "x", "a b;c"])
    assert shlex.split(cmd) == ["sh", "-c", "echo $1; rm -rf /", "x", "a b;c"]


def test_diagnose_names_the_cause() -> None:
    assert "sshd running" in diagnose("ssh: connect to host h port 22: Connection refused")
    assert "did not answer" in diagnose("ssh: connect to host h port 22: Connection timed out")
    assert "known_hosts" in diagnose("Host key verification failed.")
    assert "authentication" in diagnose("root@h: Permission denied (publickey).")
