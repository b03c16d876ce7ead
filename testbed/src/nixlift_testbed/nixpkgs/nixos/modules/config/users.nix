{ lib, ... }:
let
  inherit (lib) mkOption types;

  userOpts = { name, config, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; description = "The user's login name."; };
      uid = mkOption { type = types.nullOr types.int; default = null; description = "The user's id."; };
      group = mkOption { type = types.str; default = ""; description = "The user's primary group."; };
      extraGroups = mkOption { type = types.listOf types.str; default = [ ]; description = "Further groups of the user."; };
      description = mkOption { type = types.str; default = ""; description = "The user's full name."; };
      isNormalUser = mkOption { type = types.bool; default = false; description = "Whether this is a person's account."; };
      isSystemUser = mkOption { type = types.bool; default = false; description = "Whether this is a system account."; };
      home = mkOption {
        type = types.str;
        default = if config.isNormalUser then "/home/${config.name}" else "/var/empty";
        description = "The user's home directory.";
      };
      createHome = mkOption { type = types.bool; default = config.isNormalUser; description = "Whether to create the home directory."; };
      shell = mkOption { type = types.nullOr (types.either types.package types.path); default = null; description = "The user's login shell."; };
      packages = mkOption { type = types.listOf types.package; default = [ ]; description = "Packages for this user."; };
      hashedPassword = mkOption { type = types.nullOr types.str; default = null; description = "The hashed password."; };
      initialPassword = mkOption { type = types.nullOr types.str; default = null; description = "The initial password."; };
      openssh.authorizedKeys = {
        keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; description = "Public keys allowed to log in as this user."; };
        keyFiles = mkOption { type = types.listOf types.path; default = [ ]; description = "Files of public keys allowed to log in as this user."; };
      };
    };
  };

  groupOpts = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; description = "The group's name."; };
      gid = mkOption { type = types.nullOr types.int; default = null; description = "The group's id."; };
      members = mkOption { type = types.listOf types.str; default = [ ]; description = "Members of the group."; };
    };
  };
in
{
  options.users = {
    users = mkOption {
      type = types.attrsOf (types.submodule userOpts);
      default = { };
      description = "User accounts.";
    };
    groups = mkOption {
      type = types.attrsOf (types.submodule groupOpts);
      default = { };
      description = "Groups.";
    };
    mutableUsers = mkOption { type = types.bool; default = true; description = "Whether users may be changed outside the configuration."; };
  };
}
