import json
from pathlib import Path

from nixlift.nix import argv
from nixlift.nix.argv import NetworkArgs, NixSettings

SETTINGS = NixSettings(
    include=("nixpkgs=/src/nixpkgs",),
    options=(("extra-platforms", "aarch64-linux"),),
    builders="ssh://b aarch64-linux",
    max_jobs="4",
    show_trace=True,
)


def test_evaluate_passes_the_request_as_json_and_user_args_verbatim() -> None:
    request = {"files": ["/n.nix"], "deploymentName": "rpi"}
    cmd = argv.evaluate(request, NetworkArgs((("n", "1 + 1"),), (("s", "x y"),)), SETTINGS)
    assert cmd[:5] == ["nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode"]
    assert cmd[5].endswith("eval.nix") and Path(cmd[5]).exists()
    assert cmd[6:8] == ["--argstr", "__nixliftRequest"]
    assert json.loads(cmd[8]) == request
    assert cmd[9:] == [
        "--arg",
        "n",
        "1 + 1",
        "--argstr",
        "s",
        "x y",
        "-I",
        "nixpkgs=/src/nixpkgs",
        "--option",
        "extra-platforms",
        "aarch64-linux",
        "--show-trace",
    ]


def test_realise_adds_a_gc_root_and_build_settings() -> None:
    assert argv.realise("/nix/store/a.drv", Path("/tmp/r/web"), SETTINGS) == [
        "nix-store",
        "--realise",
        "/nix/store/a.drv",
        "--add-root",
        "/tmp/r/web",
        "--option",
        "build-poll-interval",
        "1",
        "--option",
        "extra-platforms",
        "aarch64-linux",
        "--builders",
        "ssh://b aarch64-linux",
        "--max-jobs",
        "4",
    ]


def test_copy_to_a_store_with_and_without_substitutes() -> None:
    assert argv.copy_to("ssh-ng://root@h", ["/nix/store/a"], use_substitutes=True) == [
        "nix",
        "--extra-experimental-features",
        "nix-command",
        "copy",
        "--no-check-sigs",
        "--to",
        "ssh-ng://root@h",
        "--substitute-on-destination",
        "/nix/store/a",
    ]
    assert "--substitute-on-destination" not in argv.copy_to(
        "ssh://h", ["/nix/store/a"], use_substitutes=False
    )
    # a derivation is copied as itself, never built here to copy its outputs
    assert argv.copy_to("ssh-ng://h", ["/nix/store/a.drv"], use_substitutes=False)[-2:] == [
        "--derivation",
        "/nix/store/a.drv",
    ]


def test_show_config_uses_the_same_build_settings() -> None:
    cmd = argv.show_config(SETTINGS)
    assert cmd[:5] == [
        "nix",
        "--extra-experimental-features",
        "nix-command",
        "show-config",
        "--json",
    ]
    assert "--builders" in cmd and "extra-platforms" in cmd


def test_path_info_and_dry_run_for_plans() -> None:
    assert argv.path_info(["/nix/store/a-x"], SETTINGS) == [
        "nix",
        "--extra-experimental-features",
        "nix-command",
        "path-info",
        "--json",
        "--recursive",
        "--option",
        "extra-platforms",
        "aarch64-linux",
        "/nix/store/a-x",
    ]
    assert argv.dry_run(["/nix/store/a.drv"], SETTINGS) == [
        "nix-store",
        "--realise",
        "--dry-run",
        "/nix/store/a.drv",
        "--option",
        "extra-platforms",
        "aarch64-linux",
        "--builders",
        "ssh://b aarch64-linux",
        "--max-jobs",
        "4",
    ]
