# The Pi's own configuration, as it was on the Pi (here: what the stand-in nixpkgs accepts).
{ config, pkgs, lib, ... }: {
  boot.loader.grub.enable = false;
  boot.loader.generic-extlinux-compatible.enable = true;
  fileSystems."/" = { device = "/dev/disk/by-label/NIXOS_SD"; fsType = "ext4"; };
  services.openssh.enable = true;
  # your key (`cat ~/.ssh/id_ed25519.pub`): a system without it locks you out of the Pi
  users.users.root.openssh.authorizedKeys.keys = [ ];
  environment.systemPackages = [ pkgs.hello ];
  system.stateVersion = "24.05";
}
