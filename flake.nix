# nixlift's own flake. For configurations kept in a flake, its deployment.* options as a NixOS
# module (what nixlift reads from nixosConfigurations that import it):
#
#   inputs.nixlift.url = "github:OWNER/nixlift";
#   nixosConfigurations.pi3 = nixpkgs.lib.nixosSystem {
#     modules = [ nixlift.nixosModules.default { deployment.targetHost = "192.168.1.7"; } … ];
#   };
#
# Without flakes, import the file itself: src/nixlift/nix/deployment.nix.
{
  description = "nixlift: build NixOS systems here, copy them to hosts over SSH and switch them";

  outputs = { self }: {
    nixosModules.default = ./src/nixlift/nix/deployment.nix;
  };
}
