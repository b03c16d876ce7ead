# Same interface as NixOS' eval-config.nix: evaluate a NixOS configuration.
evalConfigArgs@
{ system ? builtins.currentSystem
, pkgs ? null
, baseModules ? import ../modules/module-list.nix
, extraArgs ? { }
, specialArgs ? { }
, modules
, modulesLocation ? (builtins.unsafeGetAttrPos "modules" evalConfigArgs).file or null
, check ? true
, prefix ? [ ]
, lib ? import ../../lib
, extraModules ?
    let e = builtins.getEnv "NIXOS_EXTRA_MODULE_PATH"; in
    lib.optional (e != "") (import e)
}:
let
  pkgs_ = pkgs;

  pkgsModule = rec {
    _file = ./eval-config.nix;
    key = _file;
    config = lib.mkMerge (
      # `system = null` means: the configuration sets its platform itself.
      lib.optional (system != null) { nixpkgs.system = lib.mkDefault system; }
      ++ lib.optional (pkgs_ != null) { _module.args.pkgs = lib.mkForce pkgs_; }
    );
  };

  legacyModules =
    lib.optional (evalConfigArgs ? extraArgs) { config._module.args = extraArgs; }
    ++ lib.optional (evalConfigArgs ? check) { config._module.check = lib.mkDefault check; };

  # Inline modules without a file of their own are reported as the caller's file.
  userModules =
    (if modulesLocation == null then modules
     else map (lib.setDefaultModuleLocation modulesLocation) modules)
    ++ legacyModules;

  noUserModules = lib.evalModules {
    inherit prefix;
    specialArgs = { modulesPath = builtins.toString ../modules; } // specialArgs;
    modules = baseModules ++ extraModules ++ [
      pkgsModule
      { _module.args = { inherit noUserModules baseModules extraModules modules; }; }
    ];
  };

  withExtraAttrs = configuration: configuration // {
    inherit extraArgs lib;
    inherit (configuration._module.args) pkgs;
    extendModules = args: withExtraAttrs (configuration.extendModules args);
  };
in
withExtraAttrs (noUserModules.extendModules { modules = userModules; })
