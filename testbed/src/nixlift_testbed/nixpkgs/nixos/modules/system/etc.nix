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
  # services.openssh installs these itself (copies sshd can read before users exist)
  installed = lib.filter (e: !(lib.hasPrefix "ssh/authorized_keys.d/" e.target)) entries;
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

  # As NixOS' setup-etc.pl: /etc/static is this system's etc; each file it declares is a link
  # to /etc/static/NAME (a copy with its mode where it has one); .clean lists what activation
  # made, so that a file the system no longer declares is removed, and nothing else.
  config.standin.activation.activateSnippets = ''
    # environment.etc
    mkdir -p "$etc"
    ln -sfn "$systemConfig/etc" "$etc/.static.tmp.$$"
    mv -Tf "$etc/.static.tmp.$$" "$etc/static"
    clean=
    put_etc() {
      target="$etc/$1"
      mkdir -p "''${target%/*}"
      tmp="''${target%/*}/.etc-tmp.$$"
      if [ "$2" = symlink ]; then
        ln -sfn "$etc/static/$1" "$tmp"
      else
        cp "$etc/static/$1" "$tmp"
        chmod "$2" "$tmp"
      fi
      mv -Tf "$tmp" "$target"
      clean="$clean$1
    "
    }
  '' + lib.concatMapStrings (e: "put_etc ${lib.escapeShellArgs [ e.target e.mode ]}\n") installed + ''
    if [ -f "$etc/.clean" ]; then
      while IFS= read -r name; do
        case "$name" in ""|/*|*..*) continue ;; esac
        [ -e "$etc/static/$name" ] || rm -f "$etc/$name"
      done < "$etc/.clean"
    fi
    printf '%s' "$clean" > "$etc/.clean.tmp.$$"
    mv -f "$etc/.clean.tmp.$$" "$etc/.clean"
  '';
}
