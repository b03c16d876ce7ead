# Boot options are accepted so real-looking configurations evaluate; the stand-in
# "bootloader" is two records in the state directory: boot-default (written by
# switch-to-configuration switch|boot) and boot-once (an entry for the next boot only). A sandbox
# host reads them when it boots (see nixlift_testbed's init.sh and its `standin-bootctl`).
{ lib, ... }:
let
  inherit (lib) mkOption types;
  strs = description: mkOption { type = types.listOf types.str; default = [ ]; inherit description; };
  flag = default: description: mkOption { type = types.bool; inherit default description; };
in
{
  options.boot = {
    isContainer = flag false "Whether this is a container (no bootloader, no kernel).";
    kernelModules = strs "Kernel modules loaded in the second boot stage.";
    kernelParams = strs "Kernel command line parameters.";
    initrd.availableKernelModules = strs "Kernel modules available in the initrd.";
    initrd.kernelModules = strs "Kernel modules loaded in the initrd.";
    binfmt.emulatedSystems = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "aarch64-linux" ];
      description = "Systems to run through binfmt emulation (qemu).";
    };
    loader = {
      grub.enable = flag true "Whether to use GRUB.";
      grub.device = mkOption { type = types.str; default = ""; description = "Where GRUB is installed (or `nodev`)."; };
      grub.devices = strs "Devices GRUB is installed on.";
      grub.efiSupport = flag false "Whether GRUB is built with EFI support.";
      systemd-boot.enable = flag false "Whether to use systemd-boot.";
      efi.canTouchEfiVariables = flag false "Whether the installer may change EFI variables.";
      generic-extlinux-compatible.enable = flag false "Whether to write an extlinux-compatible configuration (e.g. Raspberry Pi).";
      timeout = mkOption { type = types.nullOr types.int; default = 5; description = "Boot menu timeout in seconds."; };
    };
  };
}
