# `import <nixpkgs/nixos> { configuration = ...; }`, as in NixOS.
{ configuration ? import <nixos-config>
, system ? builtins.currentSystem
}:
let
  eval = import ./lib/eval-config.nix { inherit system; modules = [ configuration ]; };
in
{
  inherit (eval) pkgs config options;
  system = eval.config.system.build.toplevel;
}
