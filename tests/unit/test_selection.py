import re

import pytest

from nixlift.selection import Pattern, Selection, glob_to_ere, split_patterns


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("web-*", "web-1", True),
        ("web-*", "db-1", False),
        ("h?", "h1", True),
        ("h?", "h10", False),
        ("h[12]", "h2", True),
        ("h[!12]", "h2", False),
        ("a.b*", "a.bc", True),
        ("a.b*", "axbc", False),
        ("x+(y)", "x+(y)", True),
    ],
)
def test_glob_to_ere_matches_whole_names(glob: str, name: str, matches: bool) -> None:
    # Python's re agrees with POSIX ERE on this subset; builtins.match anchors the whole string.
    assert (re.fullmatch(glob_to_ere(glob), name) is not None) is matches


def test_patterns_split_on_commas_and_classify() -> None:
    pats = split_patterns(["a,web-*", " @edge ,", "db"])
    assert [p.text for p in pats] == ["a", "web-*", "@edge", "db"]
    assert [p.kind for p in pats] == ["name", "regex", "tag", "name"]
    assert Pattern("@edge").to_request() == {"kind": "tag", "value": "edge"}


def test_no_patterns_selects_everything() -> None:
    morph = {"tagged": [], "skip": 0, "every": 1, "limit": 0}
    sel = Selection.from_args([], [])
    assert sel.include is None and not sel.names_machines
    assert sel.to_request() == {"include": None, "exclude": [], **morph}
    sel = Selection.from_args(["h1"], ["h2"])
    assert sel.names_machines
    assert sel.to_request() == {
        "include": [{"kind": "name", "value": "h1"}],
        "exclude": [{"kind": "name", "value": "h2"}],
        **morph,
    }


def test_morph_selection_flags() -> None:
    sel = Selection.from_args([], [], tagged=["web,eu", " db "], skip=1, every=2, limit=3)
    assert sel.tagged == ("web", "eu", "db") and sel.names_machines
    assert sel.to_request()["tagged"] == ["web", "eu", "db"]
    assert (sel.to_request()["skip"], sel.to_request()["every"], sel.to_request()["limit"]) == (
        1,
        2,
        3,
    )
