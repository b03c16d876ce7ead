# What the packaging test reads back from package.nix, default.nix and flake.nix, evaluated
# against the stand-in nixpkgs beside this file: plain data, printed as JSON.
{ root }:
let
  standin = import ./default.nix;
  pkgs = standin { };
  summary = drv: {
    inherit (drv) name;
    inherit (drv.args) pname version makeWrapperArgs postInstall pyproject pythonImportsCheck;
    src = drv.args.src;
    nativeBuildInputs = map (p: p.name) drv.args.nativeBuildInputs;
    dependencies = map (p: p.name) drv.args.dependencies;
    build-system = map (p: p.name) drv.args.build-system;
    license = drv.meta.license.spdxId;
    mainProgram = drv.meta.mainProgram;
  };

  flake = import (root + "/flake.nix");
  nixpkgs = {
    inherit (pkgs) lib;
    legacyPackages = pkgs.lib.genAttrs [
      "x86_64-linux"
      "aarch64-linux"
      "x86_64-darwin"
      "aarch64-darwin"
    ] (system: standin { inherit system; });
  };
  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };
  overlaid = outputs.overlays.default pkgs pkgs;
in
{
  package = summary (pkgs.callPackage (root + "/package.nix") { });
  default = summary (import (root + "/default.nix") { inherit pkgs; });
  flake = {
    inputs = builtins.attrNames flake.inputs;
    nixpkgsUrl = flake.inputs.nixpkgs.url;
    packages = builtins.mapAttrs (_: p: builtins.attrNames p) outputs.packages;
    package = summary outputs.packages.aarch64-linux.default;
    app = outputs.apps.x86_64-linux.default;
    overlay = summary overlaid.nixlift;
    nixosModule = toString outputs.nixosModules.default;
  };
}
