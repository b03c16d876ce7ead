"""The stand-in's lib: module system semantics and helper functions."""

from __future__ import annotations

from pathlib import Path

from .helpers import Standin

DECLS = """
{ lib, ... }: with lib; {
  options.deployment.targetHost = mkOption { type = types.nullOr types.str; default = null; };
  options.port = mkOption { type = types.port; default = 22; description = "A port."; };
  options.name = mkOption { type = types.str; };
  options.flag = mkOption { type = types.bool; default = false; };
  options.names = mkOption { type = types.listOf types.str; default = [ ]; };
  options.text = mkOption { type = types.lines; default = ""; };
  options.users = mkOption {
    default = { };
    type = types.attrsOf (types.submodule ({ name, config, ... }: {
      options.home = mkOption { type = types.str; default = "/home/${name}"; };
      options.keys = mkOption { type = types.listOf types.str; default = [ ]; };
    }));
  };
}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def evalmods(*modules: Path | str, extra: str = "") -> str:
    mods = " ".join(f"({m})" if isinstance(m, str) else str(m) for m in modules)
    return f"(import <nixpkgs/lib>).evalModules {{ modules = [ {mods} ]; {extra} }}"


def test_nixos_style_module_evaluates(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    mod = write(
        tmp_path,
        "mod.nix",
        """
      { config, pkgs, lib, ... }: {
        _module.args.pkgs = import <nixpkgs> { };
        name = "web-" + toString config.port;
        names = [ pkgs.hello.name ];
        deployment.targetHost = lib.mkDefault "10.0.0.1";
      }
    """,
    )
    cfg = standin.eval(f"({evalmods(decls, mod)}).config")
    assert isinstance(cfg, dict)
    assert cfg["name"] == "web-22"
    assert cfg["names"] == ["hello-2.12.1"]
    assert cfg["deployment"] == {"targetHost": "10.0.0.1"}


def test_undeclared_option_names_option_and_file(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    bad = write(tmp_path, "machine.nix", '{ ... }: { deployment.targtHost = "web"; }')
    err = standin.eval_error(f"({evalmods(decls, bad)}).config.port")
    assert "The option `deployment.targtHost' does not exist." in err
    assert f"In `{bad}'" in err
    assert '"web"' in err


def test_undeclared_option_inside_submodule(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    bad = write(tmp_path, "users.nix", '{ users.alice.homme = "/x"; }')
    err = standin.eval_error(f"({evalmods(decls, bad)}).config.users.alice.home")
    assert "The option `users.alice.homme' does not exist." in err
    assert str(bad) in err


def test_module_check_false_allows_undeclared(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    cfg = standin.eval(f"({evalmods(decls, '{ _module.check = false; nope = 1; }')}).config.port")
    assert cfg == 22


def test_wrong_type_names_option_value_and_file(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    bad = write(tmp_path, "ports.nix", '{ port = "eighty"; }')
    err = standin.eval_error(f"({evalmods(decls, bad)}).config.port")
    assert "A definition for option `port' is not of type `16 bit unsigned integer" in err
    assert f"In `{bad}'" in err
    assert '"eighty"' in err
    big = write(tmp_path, "big.nix", "{ port = 70000; }")
    assert "is not of type" in standin.eval_error(f"({evalmods(decls, big)}).config.port")
    elems = write(tmp_path, "elems.nix", '{ names = [ "a" 1 ]; }')
    err = standin.eval_error(f"({evalmods(decls, elems)}).config.names")
    assert "option `names.\"[definition 1-entry 2]\"' is not of type `string'" in err


def test_used_but_not_defined(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    err = standin.eval_error(f"({evalmods(decls)}).config.name")
    assert "The option `name' is used but not defined." in err


def test_conflicting_definitions(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    names = evalmods(decls, '{ name = "a"; }', '{ name = "b"; }')
    err = standin.eval_error(f"({names}).config.name")
    assert "The option `name' has conflicting definition values" in err
    flags = evalmods(decls, "{ flag = true; }", "{ flag = false; }")
    err = standin.eval_error(f"({flags}).config.flag")
    assert "The option `flag' has conflicting definition values" in err


def test_priorities(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    cases = [
        ('{ name = lib.mkDefault "d"; } { name = "plain"; }', "plain", 100),
        ('{ name = lib.mkForce "f"; } { name = "plain"; }', "f", 50),
        ('{ name = lib.mkDefault "d"; } { name = lib.mkOptionDefault "o"; }', "d", 1000),
        ('{ name = lib.mkOverride 10 "vm"; } { name = lib.mkForce "f"; }', "vm", 10),
        ('{ name = lib.mkIf false "no"; } { name = lib.mkDefault "yes"; }', "yes", 1000),
        ('{ config = lib.mkIf true { name = lib.mkForce "top"; }; } { name = "x"; }', "top", 50),
        (
            '{ config = lib.mkMerge [ { name = "m"; } (lib.mkIf false { name = "z"; }) ]; }',
            "m",
            100,
        ),
    ]
    for mods, value, prio in cases:
        expr = f"""let lib = import <nixpkgs/lib>;
          r = lib.evalModules {{ modules = [ {decls} {mods} ]; }};
        in [ r.config.name r.options.name.highestPrio ]"""
        assert standin.eval(expr) == [value, prio], mods
    default = standin.eval(f"({evalmods(decls)}).options.port.highestPrio")
    assert default == 1500


def test_option_attributes(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    mod = write(tmp_path, "mod.nix", "{ port = 80; }")
    opt = standin.eval(f"""let o = ({evalmods(decls, mod)}).options.port; in {{
      inherit (o) value isDefined highestPrio definitions files default description _type;
      locs = o.definitionsWithLocations; type = o.type.name; check = o.type.check 70000;
    }}""")
    assert opt == {
        "value": 80,
        "isDefined": True,
        "highestPrio": 100,
        "definitions": [80],
        "files": [str(mod)],
        "default": 22,
        "description": "A port.",
        "_type": "option",
        "locs": [{"file": str(mod), "value": 80}],
        "type": "unsignedInt16",
        "check": False,
    }


def test_attrs_of_submodule_gets_name(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    users = standin.eval(
        f"""({
            evalmods(
                decls,
                '{ users.alice.keys = [ "k1" ]; }',
                '{ users.alice.keys = [ "k2" ]; users.bob = { }; }',
                '{ users.carol = { name, ... }: { home = "/srv/${name}"; }; }',
            )
        }).config.users"""
    )
    assert users == {
        "alice": {"home": "/home/alice", "keys": ["k1", "k2"]},
        "bob": {"home": "/home/bob", "keys": []},
        "carol": {"home": "/srv/carol", "keys": []},
    }


def test_lines_and_list_order(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    texts = evalmods(decls, '{ text = "a"; }', '{ text = lib.mkBefore "0"; }', '{ text = "b"; }')
    text = standin.eval(f"let lib = import <nixpkgs/lib>; in ({texts}).config.text")
    # Later modules' definitions come first, as in the real lib.
    assert text == "0\nb\na"
    names = standin.eval(
        f"""let lib = import <nixpkgs/lib>; in ({
            evalmods(
                decls,
                '{ names = lib.mkAfter [ "last" ]; }',
                '{ names = [ "middle" ]; }',
                '{ names = lib.mkBefore [ "first" ]; }',
                '{ names = lib.mkOrder 1200 [ "later" ]; }',
            )
        }).config.names"""
    )
    assert names == ["first", "middle", "later", "last"]


def test_imports_of_paths_are_deduplicated(standin: Standin, tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.nix",
        """{ lib, ... }: {
      imports = [ ./b.nix ];
      options.a = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
      config.a = [ "from-a" ];
    }""",
    )
    write(tmp_path, "b.nix", '{ a = [ "from-b" ]; }')
    top = write(tmp_path, "top.nix", "{ imports = [ ./a.nix ./b.nix ./a.nix ]; }")
    value = standin.eval(f"({evalmods(top, tmp_path / 'b.nix')}).config.a")
    assert isinstance(value, list)
    assert sorted(value) == ["from-a", "from-b"]


def test_special_args_and_module_args(standin: Standin, tmp_path: Path) -> None:
    decls = write(tmp_path, "decls.nix", DECLS)
    mod = write(tmp_path, "mod.nix", '{ greeting, extra, ... }: { name = "${greeting} ${extra}"; }')
    value = standin.eval(
        f"""({
            evalmods(
                decls,
                mod,
                '{ _module.args.extra = "there"; }',
                extra='specialArgs = { greeting = "hi"; };',
            )
        }).config.name"""
    )
    assert value == "hi there"


def test_types_have_check_and_description(standin: Standin) -> None:
    result = standin.eval("""with (import <nixpkgs/lib>).types; [
      (port.check 22) (port.check 65536) (str.check "x") (bool.check 1)
      ((listOf int).check [ ]) ((enum [ "a" ]).check "b") (package.check "x")
      ((ints.between 1 3).check 3) (ints.positive.check 0) (ints.unsigned.check 0)
      (nonEmptyStr.check " ") ((nullOr str).check null) (path.check "/etc")
      (listOf (nullOr str)).description (attrsOf str).description
    ]""")
    assert result == [
        True,
        False,
        True,
        False,
        True,
        False,
        False,
        True,
        False,
        True,
        False,
        True,
        True,
        "list of (null or string)",
        "attribute set of string",
    ]


def test_lib_functions(standin: Standin) -> None:
    result = standin.eval("""let lib = import <nixpkgs/lib>; in with lib; [
      (mapAttrsToList (n: v: n + v) { a = "1"; b = "2"; })
      (recursiveUpdate { a = { b = 1; c = 2; }; } { a.b = 5; })
      (attrByPath [ "a" "x" ] "dflt" { a.b = 1; })
      (splitString "," "a,b,,c")
      (escapeShellArg "it's")
      (concatMapStringsSep "-" toUpper [ "a" "b" ])
      (unique [ 1 2 1 ])
      (versionAtLeast "24.05" "23.11")
      (attrsets.filterAttrs (n: v: v > 1) { a = 1; b = 2; })
      (lists.last [ 1 2 ])
      (strings.removePrefix "ab" "abc")
      trivial.release
      (fix (self: { a = 1; b = self.a + 1; })).b
      (pipe 2 [ (x: x + 1) (x: x * 2) ])
    ]""")
    assert result == [
        ["a1", "b2"],
        {"a": {"b": 5, "c": 2}},
        "dflt",
        ["a", "b", "", "c"],
        "'it'\\''s'",
        "A-B",
        [1, 2],
        True,
        {"b": 2},
        2,
        "c",
        "24.05",
        2,
        6,
    ]


def test_systems_elaborate(standin: Standin) -> None:
    result = standin.eval("""let lib = import <nixpkgs/lib>; in map (s:
        let p = lib.systems.elaborate s; in
        [ p.system p.isLinux p.isDarwin p.isAarch64 p.isx86_64 p.isAarch32 p.parsed.cpu.name ])
      [ "x86_64-linux" "i686-linux" "aarch64-linux" "armv7l-linux" "armv6l-linux"
        "riscv64-linux" "x86_64-darwin" "aarch64-darwin"
        lib.systems.examples.raspberryPi { system = "aarch64-linux"; } ]""")
    assert result == [
        ["x86_64-linux", True, False, False, True, False, "x86_64"],
        ["i686-linux", True, False, False, False, False, "i686"],
        ["aarch64-linux", True, False, True, False, False, "aarch64"],
        ["armv7l-linux", True, False, False, False, True, "armv7l"],
        ["armv6l-linux", True, False, False, False, True, "armv6l"],
        ["riscv64-linux", True, False, False, False, False, "riscv64"],
        ["x86_64-darwin", False, True, False, True, False, "x86_64"],
        ["aarch64-darwin", False, True, True, False, False, "aarch64"],
        ["armv6l-linux", True, False, False, False, True, "armv6l"],
        ["aarch64-linux", True, False, True, False, False, "aarch64"],
    ]
    err = standin.eval_error('(import <nixpkgs/lib>).systems.elaborate "sparc-linux"')
    assert "unknown system `sparc-linux'" in err


def test_pkgs_overlay_and_platform(standin: Standin) -> None:
    result = standin.eval("""let pkgs = import <nixpkgs> {
        localSystem = { system = "aarch64-linux"; };
        overlays = [ (final: prev: { greeting = "hi from " + prev.system; }) ];
      };
      in [ pkgs.greeting pkgs.stdenv.hostPlatform.system pkgs.hello.system (pkgs.lib == null) ]""")
    assert result == ["hi from aarch64-linux", "aarch64-linux", "aarch64-linux", False]
