# systemd units, as NixOS declares them (the subset deployment tools write: services, paths and
# targets with their dependencies, scripts and [Service]/[Path]/[Unit] settings). The stand-in
# runs no systemd: the units are only evaluated, so tests can read what a configuration asks
# systemd for (config.systemd.*).
{ lib, ... }:
let
  inherit (lib) mkOption types;

  strs = description: mkOption { type = types.listOf types.str; default = [ ]; inherit description; };

  unitOptions = {
    enable = mkOption { type = types.bool; default = true; description = "Whether the unit is installed."; };
    description = mkOption { type = types.str; default = ""; description = "The unit's Description=."; };
    wantedBy = strs "Units that want this one (WantedBy=).";
    requiredBy = strs "Units that require this one (RequiredBy=).";
    wants = strs "Wants=.";
    requires = strs "Requires=.";
    after = strs "After=.";
    before = strs "Before=.";
    bindsTo = strs "BindsTo=.";
    partOf = strs "PartOf=.";
    conflicts = strs "Conflicts=.";
    unitConfig = mkOption { type = types.attrsOf types.anything; default = { }; description = "Further [Unit] settings."; };
  };

  serviceOptions = { ... }: {
    options = unitOptions // {
      serviceConfig = mkOption { type = types.attrsOf types.anything; default = { }; description = "[Service] settings."; };
      environment = mkOption { type = types.attrsOf types.str; default = { }; description = "Environment of the service."; };
      path = mkOption { type = types.listOf (types.either types.package types.str); default = [ ]; description = "Packages on the service's PATH."; };
      script = mkOption { type = types.lines; default = ""; description = "The service's main shell commands."; };
      preStart = mkOption { type = types.lines; default = ""; description = "Shell commands run before the script."; };
      postStart = mkOption { type = types.lines; default = ""; description = "Shell commands run after the service started."; };
      restartIfChanged = mkOption { type = types.bool; default = true; description = "Whether a changed unit is restarted on activation."; };
    };
  };

  pathOptions = { ... }: {
    options = unitOptions // {
      pathConfig = mkOption { type = types.attrsOf types.anything; default = { }; description = "[Path] settings."; };
    };
  };

  targetOptions = { ... }: { options = unitOptions; };
in
{
  options.systemd = {
    services = mkOption { type = types.attrsOf (types.submodule serviceOptions); default = { }; description = "systemd services."; };
    paths = mkOption { type = types.attrsOf (types.submodule pathOptions); default = { }; description = "systemd path units."; };
    targets = mkOption { type = types.attrsOf (types.submodule targetOptions); default = { }; description = "systemd targets."; };
  };

}
