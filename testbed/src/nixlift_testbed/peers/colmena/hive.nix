# colmena's hive evaluation, hermetic (meta.nixpkgs must be an instantiated package set).
{ rawHive }:
let
  inherit (builtins) attrNames elem filter isFunction isList listToAttrs map mapAttrs;

  hive = if isFunction rawHive || rawHive ? __functor then rawHive { } else rawHive;
  meta =
    if hive ? meta && hive ? network then throw "Only one of `network` and `meta` may be specified."
    else hive.meta or hive.network or { };
  reserved = [ "defaults" "network" "meta" ];
  nodeNames = filter (n: !(elem n reserved)) (attrNames hive);

  instantiated = what: v:
    if builtins.typeOf v == "path" || (v ? outPath && !(v ? path)) || isFunction v || v ? outputs
    then throw "Passing anything but an initialized Nixpkgs as ${what} is no longer accepted with Flakes."
    else v;
  npkgsFor = name:
    if (meta.nodeNixpkgs or { }) ? ${name} then instantiated "meta.nodeNixpkgs.${name}" meta.nodeNixpkgs.${name}
    else if meta ? nixpkgs then instantiated "meta.nixpkgs" meta.nixpkgs
    else throw "meta.nixpkgs must be specified in hermetic mode.";

  configsFor = name: let c = hive.${name}; in if isList c then c else [ c ];

  evalNode = name: configs:
    let npkgs = npkgsFor name; in
    import (npkgs.path + "/nixos/lib/eval-config.nix") {
      inherit (npkgs) system;
      modules = [ ./options.nix (hive.defaults or { }) ] ++ configs;
      specialArgs = (meta.specialArgs or { }) // ((meta.nodeSpecialArgs or { }).${name} or { }) // {
        inherit name;
        nodes = uncheckedNodes;
      };
    };

  uncheckedNodes = listToAttrs (map (name: {
    inherit name;
    value = evalNode name ([ { _module.check = false; } ] ++ configsFor name);
  }) nodeNames);

  nodes = listToAttrs (map (name: { inherit name; value = evalNode name (configsFor name); }) nodeNames);
  toplevel = mapAttrs (_: n: n.config.system.build.toplevel) nodes;
  deploymentConfig = mapAttrs (_: n: n.config.deployment) nodes;
  pick = names: set: listToAttrs (map (name: { inherit name; value = set.${name}; }) names);
  evalSelected = names: pick names toplevel;
in
{
  __schema = "v0.5";
  inherit nodes toplevel deploymentConfig evalSelected;
  deploymentConfigSelected = names: pick names deploymentConfig;
  evalSelectedDrvPaths = names: mapAttrs (_: t: t.drvPath) (evalSelected names);
  metaConfig = {
    name = meta.name or "hive";
    description = meta.description or "A Colmena Hive";
    machinesFile = meta.machinesFile or null;
    allowApplyAll = meta.allowApplyAll or true;
  };
  introspect = f: f { nodes = uncheckedNodes; };
}
