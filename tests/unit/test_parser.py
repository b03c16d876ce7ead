"""The command line as people type it (issue 10, item 2): options and the goal in any order, a
wrong word answered with what was meant, numbers checked before anything runs, nixlift's own
options anywhere on the line. Parsed by the real parser; `main` run in this process where the
exit code and what is printed matter."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nixlift import __version__
from nixlift.cli.main import main
from nixlift.cli.options import Invocation, from_namespace
from nixlift.cli.parser import (
    EXAMPLES,
    GOALS,
    build_parser,
    command_word,
    split_remote_command,
)
from nixlift.errors import UsageError
from nixlift.model import Goal


@pytest.fixture(autouse=True)
def _empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a word is a goal or a file depending on what exists: run where nothing does
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)


def parse(*argv: str) -> Invocation:
    words, remote = split_remote_command(list(argv))
    return from_namespace(build_parser().parse_args(words), remote)


def usage_error(*argv: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse(*argv)
    return caught.value


@pytest.mark.parametrize(
    "argv",
    [
        ("deploy", "net.nix", "--on", "h1", "dry-activate"),
        ("deploy", "dry-activate", "net.nix", "--on", "h1"),
        ("deploy", "--on", "h1", "dry-activate", "net.nix"),
        ("deploy", "net.nix", "dry-activate", "--on=h1"),
    ],
)
def test_options_and_the_goal_in_any_order(argv: tuple[str, ...]) -> None:
    inv = parse(*argv)
    assert inv.goal is Goal.DRY_ACTIVATE
    assert inv.network.files == ("net.nix",) and inv.network.on == ("h1",)


def test_files_options_and_goal_interleaved_keep_the_files_in_order() -> None:
    inv = parse("deploy", "a.nix", "--on", "h1", "b.nix", "-d", "x", "boot", "--fail-fast")
    assert inv.network.files == ("a.nix", "b.nix") and inv.goal is Goal.BOOT
    assert inv.network.deployment == "x" and inv.fleet.fail_fast


def test_apply_local_takes_a_goal_anywhere_too() -> None:
    inv = parse("apply-local", "test", "--node", "pi3", "net.nix")
    assert inv.goal is Goal.TEST and inv.machine == "pi3" and inv.network.files == ("net.nix",)


def test_no_goal_is_switch_and_every_goal_word_is_its_goal() -> None:
    assert parse("deploy", "net.nix").goal is Goal.SWITCH
    for word in GOALS:
        assert parse("deploy", "net.nix", word).goal is Goal(word)


def test_a_goals_name_is_the_goal_even_when_a_file_has_it(tmp_path: Path) -> None:
    # the same line means the same wherever it runs; the file is given as a path
    (tmp_path / "test").write_text("{ }")
    inv = parse("deploy", "test")
    assert inv.goal is Goal.TEST and inv.network.files == ()
    assert parse("deploy", "./test").network.files == ("./test",)


def test_the_usage_line_shows_the_goal() -> None:
    for command in ("deploy", "apply-local"):
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert "[GOAL]" in sub.choices[command].format_usage()


def test_a_misspelt_goal_says_what_was_meant() -> None:
    error = usage_error("deploy", "net.nix", "--on", "h1", "swtich")
    assert str(error) == "unknown goal 'swtich' (did you mean 'switch'?)"
    assert error.exit_code == 2
    assert "dry-activate" in str(usage_error("deploy", "dry-activat"))


def test_a_bare_word_that_is_no_goal_and_no_file_is_not_taken_for_a_network() -> None:
    error = usage_error("deploy", "h1")
    assert "unknown goal 'h1'" in str(error) and "--on" in (error.hint or "")


def test_a_goal_for_a_command_without_one_is_refused() -> None:
    error = usage_error("eval", "net.nix", "boot")
    assert "takes no goal" in str(error) and "./boot" in (error.hint or "")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("--build-only", "--test"), ("--build-only", "--test")),
        (("--copy-only", "boot"), ("'boot'", "--copy-only")),
        (("switch", "dry-activate"), ("'switch'", "'dry-activate'")),
    ],
)
def test_conflicting_goals_are_an_error_naming_both(
    argv: tuple[str, ...], named: tuple[str, str]
) -> None:
    error = usage_error("deploy", "net.nix", *argv)
    assert error.exit_code == 2 and str(error).startswith("conflicting goals")
    assert all(word in str(error) for word in named), str(error)


def test_the_same_goal_twice_is_that_goal() -> None:
    assert parse("deploy", "net.nix", "--test", "test").goal is Goal.TEST
    assert parse("deploy", "net.nix", "--build-only").goal is Goal.BUILD


def test_a_misspelt_command_and_option_say_what_was_meant() -> None:
    with pytest.raises(UsageError, match=r"unknown command 'deplyo' \(did you mean 'deploy'\?\)"):
        parse("deplyo", "net.nix")
    with pytest.raises(UsageError, match=r"unknown option --parralel \(did you mean '--parallel'"):
        parse("deploy", "net.nix", "--parralel", "3")


@pytest.mark.parametrize(
    ("option", "bad", "good"),
    [
        ("--parallel", "-1", "0"),
        ("--build-parallel", "0", "1"),
        ("--build-parallel", "-3", "4"),
        ("--connect-timeout", "-5", "1"),
        ("--connect-timeout", "0", "30"),
        ("--reboot-timeout", "0", "60"),
        ("--lock-wait", "-1", "0"),
        ("--parallel", "many", "10"),
    ],
)
def test_numbers_are_checked_before_anything_runs(option: str, bad: str, good: str) -> None:
    with pytest.raises(UsageError, match=f"argument {option}"):
        parse("deploy", "net.nix", option, bad)
    parse("deploy", "net.nix", option, good)


def test_parallel_zero_means_all_and_defaults_hold() -> None:
    inv = parse("deploy", "net.nix", "--parallel", "0")
    assert inv.fleet.parallel == 0
    defaults = parse("deploy", "net.nix").fleet
    assert defaults.parallel == 10 and defaults.connect_timeout == 10
    assert defaults.build_parallel is None


@pytest.mark.parametrize(
    "argv",
    [
        ("-v", "--debug", "--color", "never", "eval", "net.nix"),
        ("eval", "net.nix", "-v", "--debug", "--color", "never"),
        ("-v", "eval", "--color=never", "net.nix", "--debug"),
    ],
)
def test_own_options_anywhere_on_the_line(argv: tuple[str, ...]) -> None:
    out = parse(*argv).output
    assert out.verbose and out.debug and out.color == "never" and not out.quiet


def test_quiet_before_or_after_the_command_and_not_with_verbose() -> None:
    assert parse("-q", "deploy", "net.nix").output.quiet
    assert parse("deploy", "net.nix", "-q").output.quiet
    with pytest.raises(UsageError, match="both given"):
        parse("-v", "deploy", "net.nix", "-q")


def test_color_defaults_to_auto_and_no_color_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("eval", "net.nix").output.color == "auto"
    monkeypatch.setenv("NO_COLOR", "1")
    assert parse("eval", "net.nix").output.color == "never"
    # the flag still wins over the environment
    assert parse("eval", "net.nix", "--color", "always").output.color == "always"


def test_an_option_of_nixlift_before_the_command_is_not_reset_by_the_command() -> None:
    assert parse("--color", "always", "deploy", "net.nix").output.color == "always"


def test_exec_words_after_the_double_dash_go_to_the_host() -> None:
    inv = parse("exec", "net.nix", "--on", "h1", "-v", "--", "ls", "-l", "--on")
    assert inv.remote_command == ("ls", "-l", "--on") and inv.network.on == ("h1",)
    assert inv.output.verbose


def test_nixlift_alone_prints_the_command_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    shown = capsys.readouterr().err
    assert "commands:" in shown
    for command in ("deploy", "eval", "info", "rollback", "completions"):
        assert f"\n    {command} " in shown


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as done:
            main([flag])
        assert done.value.code == 0
        assert capsys.readouterr().out.strip() == f"nixlift {__version__}"


def test_a_usage_error_exits_2_with_its_hint_and_no_usage_dump(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "net.nix", "--build-only", "--test"]) == 2
    err = capsys.readouterr().err
    assert "conflicting goals: --build-only and --test" in err
    assert "usage:" not in err and "Traceback" not in err


def test_every_commands_help_ends_with_real_examples() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        if name in ("cache", "send-keys"):
            continue
        text = command.format_help().rstrip()
        examples = text[text.rindex("examples:") :]
        lines = [ln.strip() for ln in examples.splitlines() if ln.startswith("  nixlift ")]
        assert 2 <= len(lines) <= 3, name
        assert lines[-1].startswith("nixlift"), name
    # each example parses as the command it shows (what a reader copies must work)
    for examples in EXAMPLES.values():
        for line, _ in examples:
            first = line.split(" > ")[0].split(" && ")[0]
            words = [w.strip("'") for w in first.split()[1:]]
            if "--" in words and words[0] not in ("exec", "ssh"):
                continue
            assert parse(*words).command


def test_a_command_parsed_alone_parses_as_with_every_command_declared() -> None:
    """main declares only the command on the line (build_parser(command_word(...))): each
    example parses to the same Invocation as with every command there."""
    for examples in EXAMPLES.values():
        for line, _ in examples:
            first = line.split(" > ")[0].split(" && ")[0]
            words, remote = split_remote_command([w.strip("'") for w in first.split()[1:]])
            alone = build_parser(command_word(words))
            declared = alone._subparsers._group_actions[0].choices  # type: ignore[union-attr]
            assert len(list(declared or ())) <= 2, line
            assert from_namespace(alone.parse_args(words), remote) == from_namespace(
                build_parser().parse_args(words), remote
            ), line
    # a word that is no command gets them all, for the error that says what was meant
    with pytest.raises(UsageError, match="did you mean 'deploy'"):
        build_parser(command_word(["deplyo"])).parse_args(["deplyo"])


def test_commands_import_only_what_they_run() -> None:
    from nixlift.cli import completions
    from nixlift.cli import main as main_module

    assert main_module.COMPLETION_HELPER == completions.HELPER
    parser = build_parser()
    action = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    commands = set(action.choices or ())
    # `cache serve` runs as cache-serve; send-keys is upload-keys' NixOps name
    assert commands - {"cache", "send-keys"} | {"cache-serve"} == set(main_module.COMMANDS)
    for name in main_module.COMMANDS:
        assert callable(main_module.command(name))
