# A Raspberry Pi, built on this (stronger) machine and deployed over SSH (from the repository
# root; copy both files beside your own Pi's configuration and set targetHost):
#   nixlift create examples/rpi.nix -d rpi
#   nixlift deploy -d rpi
{
  network.description = "Raspberry Pi";

  pi3 = { config, pkgs, lib, ... }: {
    deployment.targetHost = "192.168.1.x";
    nixpkgs.localSystem = {
      system = "aarch64-linux";
      config = "aarch64-unknown-linux-gnu";
    };
    imports = [ ./pi-configuration.nix ];
  };
}
