{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.networking;
in
{
  options.networking = {
    hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
      description = "The name of the machine.";
    };
    domain = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "The domain of the machine.";
    };
    fqdn = mkOption {
      type = types.str;
      readOnly = true;
      default =
        if cfg.hostName != "" && cfg.domain != null then "${cfg.hostName}.${cfg.domain}"
        else throw "The option `networking.fqdn' needs both `networking.hostName' and `networking.domain'.";
      description = "The fully qualified domain name (read-only).";
    };
    useDHCP = mkOption {
      type = types.bool;
      default = true;
      description = "Whether to use DHCP on all interfaces.";
    };
    firewall = {
      enable = mkOption { type = types.bool; default = true; description = "Whether to enable the firewall."; };
      allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; description = "Open TCP ports."; };
      allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; description = "Open UDP ports."; };
    };
  };

  config.environment.etc.hostname = lib.mkIf (cfg.hostName != "") { text = cfg.hostName + "\n"; };
}
