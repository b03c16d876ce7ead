from pathlib import Path

import pytest

from nixlift.errors import RegistryError
from nixlift.registry import Entry, Registry


def test_put_get_list_delete(tmp_path: Path) -> None:
    r = Registry(tmp_path / "sub" / "deployments.json")
    assert r.entries() == []
    r.put(Entry("rpi", ("/n/rpi.nix",), args=(("x", "1"),), include=("nixpkgs=/p",)))
    got = r.get("rpi")
    assert got.files == ("/n/rpi.nix",) and got.args == (("x", "1"),)
    assert got.created
    assert [e.name for e in r.entries()] == ["rpi"]
    # human-readable: indented JSON naming the file
    assert '"rpi.nix"' not in r.path.read_text() and "/n/rpi.nix" in r.path.read_text()
    r.delete("rpi")
    assert r.entries() == []


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    r = Registry(tmp_path / "d.json")
    r.put(Entry("a", ("/a.nix",)))
    with pytest.raises(RegistryError, match=r"no deployment named 'b' \(registered: a\)") as e:
        r.get("b")
    assert "nixlift create" in e.value.hint


def test_corrupt_registry_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("{ nope")
    with pytest.raises(RegistryError, match="not valid JSON"):
        Registry(path).entries()
