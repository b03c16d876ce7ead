# system.build.toplevel: the system generation a deployment copies and activates.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;

  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);

  toplevel = pkgs.standin.mkRawDerivation {
    name = "nixos-system-${config.system.name}-${config.system.nixos.label}";
    etc = config.system.build.etc;
    sw = config.system.build.path;
    nixosVersion = config.system.nixos.version;
    hostSystem = pkgs.stdenv.hostPlatform.system;
    configurationName = "${config.system.name}-${config.system.nixos.label}";
    switchScript = config.standin.activation.script;
    activateScript = config.standin.activation.activateScript;
    passAsFile = [ "switchScript" "activateScript" ];
    script = ''
      $bb mkdir -p "$out/bin"
      $bb ln -s "$etc/etc" "$out/etc"
      $bb ln -s "$sw" "$out/sw"
      printf '%s' "$nixosVersion" > "$out/nixos-version"
      printf '%s' "$hostSystem" > "$out/system"
      printf '%s' "$configurationName" > "$out/configuration-name"
      stc="$out/bin/switch-to-configuration"
      { printf '#!/bin/sh\ntoplevel=%s\n' "$out"; $bb cat "$switchScriptPath"; } > "$stc"
      $bb chmod 0555 "$stc"
      { printf '#!/bin/sh\nsystemConfig=%s\n' "$out"; $bb cat "$activateScriptPath"; } > "$out/activate"
      $bb chmod 0555 "$out/activate"
    '';
  };
in
{
  options.system = {
    build = mkOption {
      type = types.lazyAttrsOf (types.uniq types.unspecified);
      internal = true;
      default = { };
      description = "Derivations and values built from the configuration; `toplevel` is the system.";
    };
    activationScripts = mkOption {
      type = types.attrsOf (types.either types.str (types.submodule {
        options.text = mkOption { type = types.lines; description = "The script."; };
        options.deps = mkOption { type = types.listOf types.str; default = [ ]; description = "Scripts to run first."; };
        options.supportsDryActivation = mkOption { type = types.bool; default = false; description = "Whether it runs for dry-activate."; };
      }));
      default = { };
      description = "Activation snippets. Accepted for compatibility; the stand-in does not run them.";
    };
  };

  config.system.build.toplevel =
    if failedAssertions != [ ] then
      throw "\nFailed assertions:\n${lib.concatMapStringsSep "\n" (m: "- ${m}") failedAssertions}"
    else lib.showWarnings config.warnings toplevel;
}
