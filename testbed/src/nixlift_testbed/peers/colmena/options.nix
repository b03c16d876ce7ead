# colmena's deployment.* options (as colmena 0.4 declares them), for the stand-in's hive.
{ lib, name, ... }:
let
  inherit (lib) mkOption types;
  keyType = types.submodule ({ name, config, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; description = "File name of the key."; };
      text = mkOption { type = types.nullOr types.str; default = null; description = "Content of the key."; };
      keyFile = mkOption { type = types.nullOr (types.either types.str types.path); default = null; apply = v: if v == null then null else toString v; description = "A file with the key."; };
      keyCommand = mkOption { type = types.nullOr (types.listOf types.str); default = null; description = "A command printing the key."; };
      destDir = mkOption { type = types.str; default = "/run/keys"; description = "Directory on the host."; };
      path = mkOption { type = types.str; default = "${config.destDir}/${config.name}"; internal = true; description = "Full path on the host."; };
      user = mkOption { type = types.str; default = "root"; description = "Owner."; };
      group = mkOption { type = types.str; default = "root"; description = "Group."; };
      permissions = mkOption { type = types.str; default = "0600"; description = "Mode."; };
      uploadAt = mkOption { type = types.enum [ "pre-activation" "post-activation" ]; default = "pre-activation"; description = "When."; };
    };
  });
in
{
  options.deployment = {
    targetHost = mkOption { type = types.nullOr types.str; default = name; description = "Address."; };
    targetPort = mkOption { type = types.nullOr types.port; default = null; description = "SSH port."; };
    targetUser = mkOption { type = types.nullOr types.str; default = "root"; description = "SSH user."; };
    allowLocalDeployment = mkOption { type = types.bool; default = false; description = "apply-local."; };
    buildOnTarget = mkOption { type = types.bool; default = false; description = "Build on the host."; };
    tags = mkOption { type = types.listOf types.str; default = [ ]; description = "Tags."; };
    keys = mkOption { type = types.attrsOf keyType; default = { }; description = "Keys."; };
    replaceUnknownProfiles = mkOption { type = types.bool; default = true; description = "Replace unknown profiles."; };
    privilegeEscalationCommand = mkOption { type = types.listOf types.str; default = [ "sudo" "-H" "--" ]; description = "Become root."; };
    sshOptions = mkOption { type = types.listOf types.str; default = [ ]; description = "ssh options."; };
  };
}
