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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "does not hold"),
        ('{"deployments": []}', "does not hold"),
        ('{"deployments": {"web": {}}}', "deployment 'web' has no 'files' list"),
        ('{"deployments": {"web": "x.nix"}}', "deployment 'web' is not a JSON object"),
        ('{"deployments": {"web": {"files": "x.nix"}}}', "no 'files' list"),
        ('{"deployments": {"web": {"files": [], "args": [["a"]]}}}', "'args' that is not"),
        ('{"deployments": {"web": {"files": [], "include": [3]}}}', "'include' that is not"),
        ('{"deployments": {"web": {"flake": 7}}}', "'flake' that is not a string"),
    ],
)
def test_registry_of_the_wrong_shape_names_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(RegistryError, match=message) as e:
        Registry(path).entries()
    assert str(path) in str(e.value)


def test_a_flake_entry_needs_no_files(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"deployments": {"pi": {"flake": "/srv#pi"}}}')
    assert Registry(path).get("pi").flake == "/srv#pi"


def test_put_refuses_a_taken_name_unless_replacing(tmp_path: Path) -> None:
    r = Registry(tmp_path / "d.json")
    r.put(Entry("web", ("/a.nix",)))
    with pytest.raises(RegistryError, match=r"'web' is already registered \(/a.nix\)") as e:
        r.put(Entry("web", ("/b.nix",)), replace_existing=False)
    assert "--force" in e.value.hint
    assert r.get("web").files == ("/a.nix",)
    r.put(Entry("web", ("/b.nix",)), replace_existing=True)
    assert r.get("web").files == ("/b.nix",)
