# Only the options; the stand-in target runs its own sshd. Authorized keys are
# written to /etc/ssh/authorized_keys.d/<user> as NixOS does.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.openssh;
  withKeys = lib.filterAttrs (n: u: u.openssh.authorizedKeys.keys != [ ]) config.users.users;
in
{
  options.services.openssh = {
    enable = lib.mkEnableOption "the OpenSSH secure shell daemon";
    ports = mkOption { type = types.listOf types.port; default = [ 22 ]; description = "Ports sshd listens on."; };
    openFirewall = mkOption { type = types.bool; default = true; description = "Whether to open the ports in the firewall."; };
    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      example = { PasswordAuthentication = false; };
      description = "sshd_config settings.";
    };
  };

  config.environment.etc = lib.mkIf cfg.enable (lib.mapAttrs'
    (name: user: lib.nameValuePair "ssh/authorized_keys.d/${name}" {
      text = lib.concatMapStrings (k: k + "\n") user.openssh.authorizedKeys.keys;
      mode = "0444";
    })
    withKeys);
}
