import pytest

from nixlift.agent.protocol import Probe
from nixlift.deploy.activate import needs_activation
from nixlift.model import Goal, HostState

A = "/nix/store/aaa-nixos-system-a"
B = "/nix/store/bbb-nixos-system-b"


def test_parse_probe_answer() -> None:
    probe = Probe.from_json(
        {"current": A, "profile": B, "boot_id": "1234", "valid": True, "systemd": False}
    )
    assert probe.state == HostState(A, B, "1234")
    assert probe.has_system and not probe.systemd
    empty = Probe.from_json(
        {"current": None, "profile": None, "boot_id": None, "valid": False, "systemd": True}
    )
    assert empty.state == HostState(None, None, None)
    assert not empty.has_system and empty.systemd


@pytest.mark.parametrize(
    ("goal", "current", "profile", "expected"),
    [
        (Goal.SWITCH, A, A, False),
        (Goal.SWITCH, A, B, True),
        (Goal.SWITCH, B, A, True),
        (Goal.BOOT, B, A, False),
        (Goal.BOOT, A, B, True),
        (Goal.TEST, A, B, False),
        (Goal.TEST, B, A, True),
        (Goal.DRY_ACTIVATE, A, A, True),
    ],
)
def test_already_running_hosts_are_left_be_without_always_activate(
    goal: Goal, current: str, profile: str, expected: bool
) -> None:
    state = HostState(current, profile)
    assert needs_activation(goal, A, state, always_activate=False) is expected
    assert needs_activation(goal, A, state, always_activate=True) is True


def test_goal_phases() -> None:
    assert not Goal.BUILD.copies and Goal.PUSH.copies and not Goal.PUSH.activates
    assert Goal.SWITCH.sets_profile and Goal.BOOT.sets_profile
    assert not Goal.TEST.sets_profile and not Goal.DRY_ACTIVATE.sets_profile


def test_remote_command_split() -> None:
    from nixlift.cli.parser import split_remote_command

    assert split_remote_command(["exec", "net.nix", "--on", "a", "--", "ls", "--", "-l"]) == (
        ["exec", "net.nix", "--on", "a"],
        ["ls", "--", "-l"],
    )
    assert split_remote_command(["-v", "ssh", "h1", "--", "uptime"]) == (
        ["-v", "ssh", "h1"],
        ["uptime"],
    )
    assert split_remote_command(["deploy", "--", "x"]) == (["deploy", "--", "x"], [])
    from nixlift.cli.remote_cmd import remote_words

    assert remote_words(["ls", "-l"]) == ["ls", "-l"]
    assert remote_words(["ls | wc -l"]) == ["sh", "-c", "ls | wc -l"]


def test_a_cut_copy_is_told_from_other_failures() -> None:
    from nixlift.deploy.copy import was_cut
    from nixlift.errors import CopyError

    cut = CopyError("copying to h1 failed", stderr_tail="error: unexpected end-of-file")
    reset = CopyError("x", stderr_tail="Connection reset by peer")
    full = CopyError("x", stderr_tail="error: writing to file: No space left on device")
    assert was_cut(cut) and was_cut(reset) and not was_cut(full)
