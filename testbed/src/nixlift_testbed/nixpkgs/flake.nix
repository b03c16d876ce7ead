# The stand-in nixpkgs as a flake, shaped like nixpkgs' own: `lib` with `nixosSystem`,
# `legacyPackages.<system>`. Test flakes take it as an input (`inputs.nixpkgs.url =
# "path:…/nixlift_testbed/nixpkgs"`) where real flakes take github:NixOS/nixpkgs.
{
  description = "nixlift's stand-in nixpkgs (tests and demos only)";

  outputs = { self }:
    let
      baseLib = import ./lib;
      systems = [ "x86_64-linux" "aarch64-linux" "i686-linux" "armv7l-linux" "riscv64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
    in
    {
      lib = baseLib // {
        # As nixpkgs' flake: eval-config.nix with the flake's own tree; without `system`, the
        # configuration names its platform itself (nixpkgs.hostPlatform).
        nixosSystem = args: import ./nixos/lib/eval-config.nix ({ system = null; } // args);
      };

      legacyPackages = forAllSystems (system: import ./. { inherit system; });
    };
}
