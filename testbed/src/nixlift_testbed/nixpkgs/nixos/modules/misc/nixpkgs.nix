# Which platform the machine is and which package set its modules get as `pkgs`.
# Precedence as in NixOS: nixpkgs.pkgs, else hostPlatform (+ buildPlatform),
# else localSystem (+ crossSystem), which defaults to nixpkgs.system.
{ config, options, lib, ... }:
let
  cfg = config.nixpkgs;
  opt = options.nixpkgs;
  inherit (lib) mkOption types;

  platformType = types.either types.str types.attrs;
  overlayType = lib.mkOptionType {
    name = "nixpkgs-overlay";
    description = "nixpkgs overlay";
    check = lib.isFunction;
    merge = lib.mergeOneOption;
  };

  hasPlatform = opt.hostPlatform.isDefined;
  # Legacy options set with more than mkDefault strength while hostPlatform is set:
  # NixOS refuses that combination, so we do too.
  legacyOptionsDefined =
    lib.optional (opt.localSystem.highestPrio < (lib.mkOptionDefault { }).priority) opt.localSystem
    ++ lib.optional (opt.crossSystem.highestPrio < (lib.mkOptionDefault { }).priority) opt.crossSystem;

  systemArgs =
    if hasPlatform then
      (if lib.systems.equals cfg.buildPlatform cfg.hostPlatform
       then { localSystem = cfg.hostPlatform; }
       else { localSystem = cfg.buildPlatform; crossSystem = cfg.hostPlatform; })
    else { inherit (cfg) localSystem crossSystem; };

  finalPkgs =
    if opt.pkgs.isDefined then cfg.pkgs.appendOverlays cfg.overlays
    else import ../../.. ({ inherit (cfg) config overlays; } // systemArgs);
in
{
  options.nixpkgs = {
    pkgs = mkOption {
      type = types.pkgs;
      description = "If set, the package set given to all modules as `pkgs` (plus `nixpkgs.overlays`).";
    };
    config = mkOption {
      type = types.attrs;
      default = { };
      description = "Global configuration for the package set.";
    };
    overlays = mkOption {
      type = types.listOf overlayType;
      default = [ ];
      description = "Overlays (`final: prev: { ... }`) applied to the package set.";
    };
    hostPlatform = mkOption {
      type = platformType;
      example = { system = "aarch64-linux"; };
      apply = lib.systems.elaborate;
      description = "The platform the configuration runs on.";
    };
    buildPlatform = mkOption {
      type = platformType;
      default = cfg.hostPlatform;
      apply = p: let e = lib.systems.elaborate p; in
        if lib.systems.equals e cfg.hostPlatform then cfg.hostPlatform else e;
      description = "The platform the configuration is built on; differing from hostPlatform means cross-compiling.";
    };
    localSystem = mkOption {
      type = platformType;
      default = { inherit (cfg) system; };
      example = { system = "aarch64-linux"; };
      apply = lib.systems.elaborate;
      description = "The platform to build on (and to run on, unless crossSystem is set). Ignored when hostPlatform is set.";
    };
    crossSystem = mkOption {
      type = types.nullOr types.attrs;
      default = null;
      description = "The platform to cross-compile for. Ignored when hostPlatform is set.";
    };
    system = mkOption {
      type = types.str;
      example = "i686-linux";
      default =
        if hasPlatform then throw ''
          Neither nixpkgs.system nor any other option in nixpkgs.* is meant
          to be read by modules and configurations.
          Use pkgs.stdenv.hostPlatform instead.
        ''
        else throw ''
          Neither nixpkgs.hostPlatform nor the legacy option nixpkgs.system has been set.
          Set nixpkgs.hostPlatform (e.g. "x86_64-linux" or "aarch64-linux") in the
          machine's configuration, or pass a `system` to eval-config.nix.
        '';
      description = "Legacy way to set the platform; same as `nixpkgs.localSystem.system`.";
    };
  };

  config = {
    # Explicit default priority: an override of `pkgs` elsewhere then never forces this one.
    _module.args.pkgs = lib.mkOverride lib.modules.defaultOverridePriority finalPkgs;

    assertions = [{
      assertion = hasPlatform -> legacyOptionsDefined == [ ];
      message = ''
        Your system configures nixpkgs with the platform parameter nixpkgs.hostPlatform,
        but it also defines the legacy options:
        ${lib.concatMapStrings lib.showOptionWithDefLocs legacyOptionsDefined}
        Remove the legacy definitions.'';
    }];
  };
}
