# The stand-in's activation: bin/switch-to-configuration, with fault-injection
# knobs for tests of the deployment tool. New knobs go here, next to the script.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.standin.activation;
in
{
  options.standin.activation = {
    exitCode = mkOption {
      type = types.ints.between 0 255;
      default = 0;
      description = "Exit status of switch-to-configuration (100 is NixOS' \"reboot required\").";
    };
    sleepSeconds = mkOption {
      type = types.ints.unsigned;
      default = 0;
      description = ''
        Seconds switch-to-configuration takes between beginning (a line in
        $state/activations-begun) and switching anything: a slow activation, so tests can
        interrupt a deploy in the middle of one.
      '';
    };
    script = mkOption {
      type = types.lines;
      internal = true;
      description = ''
        Body of bin/switch-to-configuration (POSIX sh). It runs after the lines
        `#!/bin/sh` and `toplevel=<store path of this system>`, with the goal in $1.
      '';
    };
  };

  config.standin.activation.script = ''
    set -eu
    usage() {
      cat >&2 <<EOS
    Usage: $0 [switch|boot|test|dry-activate]

    switch:       make the configuration the boot default and activate now
    boot:         make the configuration the boot default
    test:         activate the configuration, but don't make it the boot default
    dry-activate: show what would be done if this configuration were activated
    EOS
      exit 1
    }
    [ "$#" -eq 1 ] || usage
    goal=$1
    case "$goal" in
      switch|boot|test|dry-activate) ;;
      *) usage ;;
    esac

    state=''${NIXLIFT_STANDIN_STATE:-/var/lib/standin}
    run=''${NIXLIFT_STANDIN_RUN:-/run}
    mkdir -p "$state"

    # A begun activation without its record in activations.jsonl was cut short half way.
    printf '%s %s\n' "$goal" "$toplevel" >> "$state/activations-begun"
  '' + lib.optionalString (cfg.sleepSeconds > 0) ''
    sleep ${toString cfg.sleepSeconds}
  '' + ''

    case "$goal" in
      switch|test)
        echo "activating the configuration..." >&2
        mkdir -p "$run"
        tmp="$run/.current-system.$$"
        ln -sfn "$toplevel" "$tmp"
        mv -T "$tmp" "$run/current-system"
        ;;
    esac
    case "$goal" in
      switch|boot)
        echo "updating the boot default..." >&2
        printf '%s\n' "$toplevel" > "$state/boot-default.tmp.$$"
        mv -f "$state/boot-default.tmp.$$" "$state/boot-default"
        ;;
      dry-activate)
        echo "would activate $toplevel"
        ;;
    esac

    now=$(date +%s.%N 2>/dev/null) || now=
    case "$now" in
      *[!0-9.]*|.*|*.|"") now=$(date +%s) ;;
    esac
    printf '{"goal": "%s", "system": "%s", "time": %s, "exitCode": %d}\n' \
      "$goal" "$toplevel" "$now" ${toString cfg.exitCode} >> "$state/activations.jsonl"
    exit ${toString cfg.exitCode}
  '';
}
