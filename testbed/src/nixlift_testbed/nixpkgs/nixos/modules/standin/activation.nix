# The stand-in's activation: bin/switch-to-configuration and activate, with fault-injection
# knobs for tests of the deployment tool. New knobs go here, next to the scripts.
#
# Where things go (environment variables, so tests can run a system outside a sandbox host):
#   $NIXLIFT_STANDIN_STATE (/var/lib/standin)  activations-begun, activations.jsonl,
#                                               boot-default (the bootloader's default entry)
#   $NIXLIFT_STANDIN_RUN   (/run)               current-system
#   $NIXLIFT_STANDIN_ETC   (/etc)               files activation manages, e.g.
#                                               ssh/authorized_keys.d/<user>
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
      description = ''
        Exit status of switch-to-configuration, for every goal, after it has done its work
        (switched, written the boot default) and recorded it in activations.jsonl. 100 is NixOS'
        "reboot required"; any other non-zero status is a failed activation that nevertheless
        switched. Does not apply when the system is activated at boot.
      '';
    };
    sleepSeconds = mkOption {
      type = types.ints.unsigned;
      default = 0;
      description = ''
        Seconds switch-to-configuration takes, for every goal, between beginning (its line in
        $state/activations-begun) and switching anything: a slow activation, so tests can
        interrupt a deploy in the middle of one. Does not apply at boot.
      '';
    };
    hang = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether switch-to-configuration hangs: for every goal it begins (its line in
        $state/activations-begun, then a message on stderr) and then sleeps forever without
        switching anything (no current-system, no boot default, no activations.jsonl record).
        It ends only when killed, e.g. by a reboot of the sandbox host (the system's
        profile generation, if the deployer set one, stays). Does not apply at boot: a sandbox
        host boots a hanging system normally (`standin-bootctl set-default PATH` makes it the
        boot default, since its `switch-to-configuration boot` hangs before writing that).
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
    activateSnippets = mkOption {
      type = types.lines;
      internal = true;
      default = "";
      description = ''
        Parts of $toplevel/activate contributed by other modules (POSIX sh, `set -eu`), run in
        order before /run/current-system is switched. They see $systemConfig (this system's
        store path), $run and $etc (where /run and /etc are).
      '';
    };
    activateScript = mkOption {
      type = types.lines;
      internal = true;
      description = ''
        Body of $toplevel/activate (POSIX sh), NixOS' activation script: what makes this
        system the running one, without the bootloader. switch-to-configuration runs it for
        the goals switch and test; a sandbox host runs it at boot for the boot entry. It runs
        after the lines `#!/bin/sh` and `systemConfig=<store path of this system>`. No fault
        knob applies to it.
      '';
    };
  };

  config.standin.activation.activateScript = ''
    set -eu
    run=''${NIXLIFT_STANDIN_RUN:-/run}
    etc=''${NIXLIFT_STANDIN_ETC:-/etc}

  '' + cfg.activateSnippets + ''

    # /run/current-system: the running system (NixOS' activation script ends the same way).
    mkdir -p "$run"
    ln -sfn "$systemConfig" "$run/.current-system.$$"
    mv -T "$run/.current-system.$$" "$run/current-system"
  '';

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
    mkdir -p "$state"

    # A begun activation without its record in activations.jsonl was cut short half way.
    printf '%s %s\n' "$goal" "$toplevel" >> "$state/activations-begun"
  '' + lib.optionalString cfg.hang ''
    echo "switch-to-configuration hangs (standin.activation.hang)" >&2
    while :; do sleep 3600; done
  '' + lib.optionalString (cfg.sleepSeconds > 0) ''
    sleep ${toString cfg.sleepSeconds}
  '' + ''

    case "$goal" in
      switch|test)
        echo "activating the configuration..." >&2
        "$toplevel/activate"
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
