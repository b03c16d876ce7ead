# A stand-in of colmena's flake (tests only): lib.makeHive evaluates a raw hive in hermetic mode
# to the attribute set colmena's own makeHive gives (__schema "v0.5"), with colmena's
# deployment.* options. Its nixpkgs input is unused, as in colmena (the hive's meta.nixpkgs is).
{
  description = "stand-in of colmena's lib.makeHive for nixlift's tests";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }: {
    lib.makeHive = rawHive: import ./hive.nix { inherit rawHive; };
    nixosModules.deploymentOptions = ./options.nix;
  };
}
