# The Nix side of `nixlift eval/build/deploy`. Python passes everything it knows as one JSON
# document (`--argstr __nixliftRequest …`) and the network's own arguments as `--arg`/`--argstr`; nothing
# here is built from Python-generated Nix text.
#
# request = {
#   files = [ "/abs/network.nix" … ];       merged in order, `require` followed
#   deploymentName = "rpi";
#   include = null | [ { kind = "name" | "regex" | "tag"; value = "…"; } … ];
#   exclude = [ same ];
#   machines = "full" | "deployment" | "none";  what to say of each selected machine
#   keyTexts = true | false;                    also the text of deployment.keys.* (deploy,
#                                               upload-keys; never for eval or info)
# }
{ __nixliftRequest, ... }@callArgs:
let
  req = builtins.fromJSON __nixliftRequest;
  networkArgs = builtins.removeAttrs callArgs [ "__nixliftRequest" ];

  inherit (builtins) attrNames concatMap elem filter foldl' isAttrs isFunction isList listToAttrs map;

  # NixOps semantics: a network file is an attrset or a function of the network's arguments;
  # arguments it does not declare are not passed, missing ones take their defaults.
  callNetwork = file:
    let value = import file;
    in if isFunction value
       then value (builtins.intersectAttrs (builtins.functionArgs value) networkArgs)
       else value;

  toList = v: if isList v then v else [ v ];

  loadFile = file:
    let net = callNetwork file;
    in [ { inherit file net; } ] ++ concatMap loadFile (toList (net.require or [ ]));

  loaded = concatMap loadFile req.files;

  special = [ "network" "meta" "defaults" "resources" "require" "nixpkgs" ];

  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  names = unique (concatMap (l: filter (n: !(elem n special)) (attrNames l.net)) loaded);

  # `network` (NixOps, morph) and `meta` (colmena) say the same kind of things; later files win.
  meta = foldl' (acc: l: acc // (l.net.network or { }) // (l.net.meta or { })
                          // (if l.net ? nixpkgs then { nixpkgs = l.net.nixpkgs; } else { }))
                { } loaded;

  # nixpkgs may be a path, a string, a flake input (outPath) or an instantiated package set
  # (morph's `network.pkgs`, colmena's `meta.nixpkgs = import <nixpkgs> {}`: it has `path`).
  nixpkgsPath = what: v:
    if isAttrs v then
      (if v ? path then v.path
       else if v ? outPath then v.outPath
       else throw "nixlift: ${what} is an attribute set without `path` or `outPath`; give the path of a nixpkgs checkout instead")
    else v;

  searchPathHasNixpkgs = builtins.any (e: e.prefix == "nixpkgs" || e.prefix == "") builtins.nixPath;

  defaultNixpkgs =
    if meta ? nixpkgs then nixpkgsPath "network.nixpkgs" meta.nixpkgs
    else if meta ? pkgs then nixpkgsPath "network.pkgs" meta.pkgs
    else if searchPathHasNixpkgs then <nixpkgs>
    else throw "nixlift: no nixpkgs to evaluate the machines with: set network.nixpkgs in the network file, pass --nixpkgs PATH or -I nixpkgs=PATH, or set NIX_PATH";

  nixpkgsFor = name:
    if (meta.nodeNixpkgs or { }) ? ${name}
    then nixpkgsPath "meta.nodeNixpkgs.${name}" meta.nodeNixpkgs.${name}
    else defaultNixpkgs;

  # Each piece keeps the file it came from, so module errors name the network file.
  modulesOf = file: value:
    if isList value then concatMap (modulesOf file) value
    else [ { _file = toString file; imports = [ value ]; } ];

  defaults = concatMap (l: if l.net ? defaults then modulesOf l.file l.net.defaults else [ ]) loaded;
  machineModules = name: concatMap (l: if l.net ? ${name} then modulesOf l.file l.net.${name} else [ ]) loaded;

  deploymentName = req.deploymentName;
  uuid =
    let h = builtins.hashString "sha256" "nixlift-deployment:${deploymentName}";
        s = builtins.substring;
    in "${s 0 8 h}-${s 8 4 h}-${s 12 4 h}-${s 16 4 h}-${s 20 12 h}";

  evalMachine = name:
    import "${toString (nixpkgsFor name)}/nixos/lib/eval-config.nix" {
      # As nixos-rebuild does: the deploying machine's system is only a default (mkDefault);
      # a machine that names its own (nixpkgs.localSystem, .system, .hostPlatform) keeps it.
      system = builtins.currentSystem;
      specialArgs = { inherit name nodes deploymentName uuid; resources = { }; }
        // (meta.specialArgs or { })
        // ((meta.nodeSpecialArgs or { }).${name} or { });
      modules = [
        ./deployment.nix
        ({ lib, ... }: { networking.hostName = lib.mkDefault name; })
      ] ++ defaults ++ machineModules name;
    };

  nodes = listToAttrs (map (name: { inherit name; value = evalMachine name; }) names);

  matches = name: pattern:
    if pattern.kind == "tag" then elem pattern.value nodes.${name}.config.deployment.tags
    else if pattern.kind == "name" then pattern.value == name
    else builtins.match pattern.value name != null;

  included = if req.include == null then names
             else filter (name: builtins.any (matches name) req.include) names;
  selected = filter (name: !(builtins.any (matches name) req.exclude)) included;

  # What Python gets of deployment.*: everything but secret material.
  publicDeployment = d: d // {
    keys = builtins.mapAttrs (_: k: builtins.removeAttrs k [ "text" ] // {
      source = if k.text != null then "text" else if k.keyFile != null then "keyFile" else if k.keyCommand != null then "keyCommand" else "none";
    }) d.keys;
  };

  # deployment.keys.<name>.text, given to Python (on nix's stdout, never in a file or the store)
  # only when it uploads keys, apart from the options it prints
  keyTexts = d:
    if req.keyTexts or false
    then listToAttrs (map (n: { name = n; value = d.keys.${n}.text; })
                          (filter (n: d.keys.${n}.text != null) (attrNames d.keys)))
    else { };

  describeDeployment = name: {
    inherit name;
    deployment = publicDeployment nodes.${name}.config.deployment;
    keyTexts = keyTexts nodes.${name}.config.deployment;
  };

  describeMachine = name:
    let
      evaluated = nodes.${name};
      config = evaluated.config;
      toplevel = config.system.build.toplevel;
      pkgs = evaluated.pkgs or config._module.args.pkgs;
    in {
      inherit name;
      # The system the toplevel derivation must be built on: this, not the deployer's, decides
      # where it can be built.
      system = toplevel.system;
      hostPlatform = pkgs.stdenv.hostPlatform.system or toplevel.system;
      deployment = publicDeployment config.deployment;
      keyTexts = keyTexts config.deployment;
      drvPath = toplevel.drvPath;
      # (not `outPath`: toJSON would turn the whole set into that string)
      toplevel = toplevel.outPath;
    };
in
{
  network = {
    description = meta.description or "";
    nixConfig = meta.nixConfig or { };
    # the evaluating (and building) machine's own system
    localSystem = builtins.currentSystem;
    # a binary cache for the fleet: a store URL, or { store; secretKeyFile; url; }. Paths are
    # kept as strings: a path turned into JSON is copied into the store, and this one is a key.
    cache =
      let c = meta.cache or null;
      in if isAttrs c then builtins.mapAttrs (_: v: if builtins.isPath v then toString v else v) c
         else if builtins.isPath c then toString c
         else c;
    inherit names;
  };
  patternMatches = map (p: filter (name: matches name p) names) (if req.include == null then [ ] else req.include);
  inherit selected;
  machines =
    let describe = if req.machines == "full" then describeMachine
                   else if req.machines == "deployment" then describeDeployment
                   else null;
    in if describe == null then { }
       else listToAttrs (map (name: { inherit name; value = describe name; }) selected);
}
