{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.system.nixos;
in
{
  options.system = {
    nixos = {
      version = mkOption {
        type = types.str;
        internal = true;
        default = lib.trivial.version;
        description = "The NixOS version (in the stand-in: the version of this tree).";
      };
      release = mkOption {
        type = types.str;
        readOnly = true;
        default = lib.trivial.release;
        description = "The NixOS release (e.g. `24.05`).";
      };
      codeName = mkOption {
        type = types.str;
        readOnly = true;
        default = lib.trivial.codeName;
        description = "The NixOS release code name.";
      };
      tags = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Strings prefixed to the version in the label.";
      };
      label = mkOption {
        type = types.strMatching "[a-zA-Z0-9:_\\.-]*";
        default = lib.concatStringsSep "-" (lib.sort (a: b: a < b) cfg.tags ++ [ cfg.version ]);
        description = "Label of the system generation (in its store name and boot entry).";
      };
    };
    stateVersion = mkOption {
      type = types.str;
      default = cfg.release;
      description = "The release whose stateful data formats this machine keeps.";
    };
    name = mkOption {
      type = types.str;
      default = if config.networking.hostName == "" then "unnamed" else config.networking.hostName;
      description = "The name of the system, used in the toplevel's store name.";
    };
  };
}
