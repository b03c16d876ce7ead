# `nix-build` (or `nix-env -f . -i`): nixlift built with the nixpkgs on NIX_PATH, or the one
# given (`nix-build --arg pkgs 'import /path/to/nixpkgs { }'`). See package.nix.
{
  pkgs ? import <nixpkgs> { },
}:
pkgs.callPackage ./package.nix { }
