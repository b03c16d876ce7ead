# environment.etc: files of /etc, collected into one derivation ($toplevel/etc).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;

  etcOpts = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; description = "Whether this file is generated."; };
      target = mkOption { type = types.str; default = name; description = "Name of the file, relative to /etc."; };
      text = mkOption { type = types.nullOr types.lines; default = null; description = "Text of the file."; };
      source = mkOption { type = types.path; description = "Path of the file's source (used when `text` is null)."; };
      mode = mkOption {
        type = types.str;
        default = "symlink";
        example = "0600";
        description = "`symlink` links the file into place; a mode like `0440` copies it with that mode.";
      };
    };
    config.source = lib.mkIf (config.text != null)
      (lib.mkDefault (pkgs.writeText "etc-${lib.replaceStrings [ "/" ] [ "-" ] name}" config.text));
  };

  entries = lib.filter (e: e.enable) (lib.attrValues config.environment.etc);
in
{
  options.environment.etc = mkOption {
    type = types.attrsOf (types.submodule etcOpts);
    default = { };
    example = lib.literalExpression ''{ "motd".text = "welcome"; }'';
    description = "Files in /etc.";
  };

  config.system.build.etc = pkgs.standin.mkRawDerivation {
    name = "etc";
    script = ''
      put() {
        t="$out/etc/$1"
        $bb mkdir -p "''${t%/*}"
        if [ "$3" = symlink ]; then
          $bb ln -s "$2" "$t"
        else
          $bb cp -R "$2" "$t"
          $bb chmod "$3" "$t"
        fi
      }
      $bb mkdir -p "$out/etc"
    '' + lib.concatMapStrings
      (e: "put ${lib.escapeShellArgs [ e.target "${e.source}" e.mode ]}\n")
      entries;
  };
}
