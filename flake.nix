# nixlift's own flake: the program, and its deployment.* options as a NixOS module.
#
#   nix run github:OWNER/nixlift -- deploy ./network.nix        # apps.default
#   nix profile install github:OWNER/nixlift                    # packages.default
#
# In a flake of configurations (nixlift reads nixosConfigurations that import the module):
#
#   inputs.nixlift.url = "github:OWNER/nixlift";
#   inputs.nixlift.inputs.nixpkgs.follows = "nixpkgs";
#   nixosConfigurations.pi3 = nixpkgs.lib.nixosSystem {
#     modules = [ nixlift.nixosModules.default { deployment.targetHost = "192.168.1.7"; } … ];
#   };
#   # and nixlift itself on a NixOS machine: nixpkgs.overlays = [ nixlift.overlays.default ];
#   # environment.systemPackages = [ pkgs.nixlift ];
#
# Without flakes: default.nix builds the program, src/nixlift/nix/deployment.nix is the module.
# package.nix is not built against a real nixpkgs in this repository (there is none where its
# tests run); tests/unit/test_nix_packaging.py evaluates this file against stand-ins.
{
  description = "nixlift: build NixOS systems here, copy them to hosts over SSH and switch them";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forEachSystem (pkgs: rec {
        nixlift = pkgs.callPackage ./package.nix { };
        default = nixlift;
      });

      apps = forEachSystem (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/nixlift";
        };
      });

      overlays.default = final: prev: { nixlift = final.callPackage ./package.nix { }; };

      nixosModules.default = ./src/nixlift/nix/deployment.nix;
    };
}
