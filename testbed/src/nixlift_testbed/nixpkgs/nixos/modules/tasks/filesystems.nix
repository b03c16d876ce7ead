{ lib, ... }:
let
  inherit (lib) mkOption types;
  fsOpts = { name, config, ... }: {
    options = {
      mountPoint = mkOption { type = types.str; default = name; description = "Where it is mounted."; };
      device = mkOption { type = types.nullOr types.str; default = null; description = "The device to mount."; };
      label = mkOption { type = types.nullOr types.str; default = null; description = "Label of the device."; };
      fsType = mkOption { type = types.str; default = "auto"; description = "The file system type."; };
      options = mkOption { type = types.listOf types.str; default = [ "defaults" ]; description = "Mount options."; };
      neededForBoot = mkOption { type = types.bool; default = false; description = "Whether it is mounted in the initrd."; };
    };
  };
in
{
  options.fileSystems = mkOption {
    type = types.attrsOf (types.submodule fsOpts);
    default = { };
    example = { "/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; }; };
    description = "File systems to mount, by mount point.";
  };
  options.swapDevices = mkOption {
    type = types.listOf (types.submodule {
      options.device = mkOption { type = types.str; description = "The swap device or file."; };
      options.size = mkOption { type = types.nullOr types.int; default = null; description = "Size in MiB of a swap file."; };
    });
    default = [ ];
    description = "Swap devices.";
  };
}
