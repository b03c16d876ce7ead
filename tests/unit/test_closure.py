"""Package names, versions and changes between closures, as `nix store diff-closures` has them
(checked against nix itself on real closures in tests/integration/test_plan.py); nix's dry run."""

from __future__ import annotations

import pytest

from nixlift.nix.closure import (
    closure_of,
    diff,
    nix_line,
    package_of,
    parse_dry_run,
    parse_path_info,
    split_name,
)
from nixlift.plans import ChangeKind


def p(name: str) -> str:
    return f"/nix/store/{'a' * 32}-{name}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello-2.12.1", ("hello", "2.12.1")),
        ("apache-httpd-2.0.48", ("apache-httpd", "2.0.48")),
        ("nixos-system-h1-24.05", ("nixos-system-h1", "24.05")),
        ("foo-_bar", ("foo", "_bar")),  # any dash not followed by a letter
        ("etc", ("etc", "")),
        ("trailing-", ("trailing-", "")),
    ],
)
def test_names_split_as_nix_drvname_does(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello-2.12.1-man", ("hello", "2.12.1")),  # an output name is stripped first
        ("glibc-2.35-lib32", ("glibc", "2.35")),
        ("system-path", ("system", "")),  # nix's own ambiguity, kept
        ("linux-6.1-modules", ("linux", "6.1")),
        ("openssl-3.0.13", ("openssl", "3.0.13")),
    ],
)
def test_store_paths_are_filed_under_diff_closures_names(
    name: str, expected: tuple[str, str]
) -> None:
    assert package_of(p(name)) == expected


def test_a_diff_has_additions_removals_version_changes_and_large_size_changes() -> None:
    before = {p("libfoo-1.0"): 1000, p("extra-1.0"): 100, p("grow-3"): 100, p("etc"): 50}
    after = {p("libfoo-1.1"): 30000, p("grow-3"): 50000, p("newpkg-0.1"): 100, p("etc"): 60}
    changes = diff(before, after)
    assert [(c.name, c.kind) for c in changes] == [
        ("extra", ChangeKind.REMOVED),
        ("grow", ChangeKind.SIZE),
        ("libfoo", ChangeKind.CHANGED),
        ("newpkg", ChangeKind.ADDED),
    ]  # etc: same version, 10 bytes more: below nix's 8 KiB, not shown
    assert [nix_line(c) for c in changes] == [
        "extra: 1.0 → ∅",
        "grow: +48.7 KiB",
        "libfoo: 1.0 → 1.1, +28.3 KiB",
        "newpkg: ∅ → 0.1",
    ]


def test_several_versions_and_the_empty_version() -> None:
    before = {p("python-3.11"): 1, p("python-3.12"): 1, p("tool"): 1}
    after = {p("python-3.12"): 1, p("python-3.13"): 1, p("tool-1"): 1}
    assert [nix_line(c) for c in diff(before, after)] == [
        "python: 3.11 → 3.13",
        "tool: ε → 1",
    ]


def test_names_sort_by_bytes_as_std_map_does() -> None:
    after = {p("Zed-1"): 1, p("alpha-1"): 1, p("Ab-1"): 1}
    assert [c.name for c in diff({}, after)] == ["Ab", "Zed", "alpha"]


def test_path_info_json_of_old_and_new_nix() -> None:
    old = '[{"path": "/nix/store/x-a", "narSize": 5, "references": ["/nix/store/x-b"]},'
    old += ' {"path": "/nix/store/x-b", "narSize": 7, "references": []}]'
    new = '{"/nix/store/x-a": {"narSize": 5, "references": ["/nix/store/x-b"]},'
    new += ' "/nix/store/x-b": {"narSize": 7, "references": []}}'
    for text in (old, new):
        infos = parse_path_info(text)
        assert closure_of("/nix/store/x-a", infos) == {"/nix/store/x-a": 5, "/nix/store/x-b": 7}
        assert closure_of("/nix/store/x-b", infos) == {"/nix/store/x-b": 7}


def test_dry_run_sections() -> None:
    text = """these 2 derivations will be built:
  /nix/store/a-x.drv
  /nix/store/b-y.drv
this path will be fetched (0.01 MiB download, 0.05 MiB unpacked):
  /nix/store/c-z
don't know how to build these paths:
  /nix/store/d-w
"""
    dry = parse_dry_run(text)
    assert dry.build == ("/nix/store/a-x.drv", "/nix/store/b-y.drv")
    assert dry.fetch == ("/nix/store/c-z",)
    assert dry.unknown == ("/nix/store/d-w",)
    assert parse_dry_run("") == parse_dry_run("warning: something\n")
