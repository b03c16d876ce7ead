# The Nix side of `nixlift eval/build/deploy`. Python passes everything it knows as one JSON
# document (`--argstr __nixliftRequest …`) and the network's own arguments as `--arg`/`--argstr`; nothing
# here is built from Python-generated Nix text.
#
# request = {
#   files = [ "/abs/network.nix" … ];       merged in order, `require` followed (each file once)
#   flake = null | {                         instead of files: a flake, already locked by Python
#     url = "path:/abs/dir?narHash=…";       what builtins.getFlake reads
#     label = "/abs/dir";                    how errors and module locations name it
#     attr = null | "colmena" | "nixosConfigurations.pi3" | "pi3" | …;
#   };
#   probe = false | true;                    only say which outputs the flake has
#   deploymentName = "rpi";
#   include = null | [ { kind = "name" | "regex" | "tag"; value = "…"; } … ];
#   exclude = [ same ];
#   tagged = [ "t1" … ];                     morph's --tagged: hosts with every one of these tags
#   skip = 0; every = 1; limit = 0;          morph's --skip/--every/--limit, after the ordering
#   sshOptions = [ … ];                      NIX_SSHOPTS, for machines without deployment options
#   machines = "full" | "deployment" | "none";  what to say of each selected machine
#   keyTexts = true | false;                    also the text of deployment.keys.* (deploy,
#                                               upload-keys; never for eval or info)
#   announce = false | true;                 first say each selected machine's deployment
#                                            options on stderr (see below)
# }
{ __nixliftRequest, ... }@callArgs:
let
  req = builtins.fromJSON __nixliftRequest;
  networkArgs = builtins.removeAttrs callArgs [ "__nixliftRequest" ];

  inherit (builtins) attrNames concatMap concatStringsSep elem filter foldl' genericClosure head
    isAttrs isFunction isList isString length listToAttrs map;

  toList = v: if isList v then v else [ v ];
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  words = s: filter (w: isString w && w != "") (builtins.split "[ \t\n]+" s);
  firstNonNull = foldl' (acc: v: if acc != null then acc else v) null;
  getPath = path: set:
    foldl' (acc: k: if acc != null && isAttrs acc && acc ? ${k} then acc.${k} else null) set path;
  showPath = concatStringsSep ".";
  fail = msg: throw "nixlift: ${msg}";

  # --- where the network comes from: files, or one output of a flake ----------------------------

  flakeReq = req.flake or null;
  flake = builtins.getFlake flakeReq.url;
  outputs = flake.outputs;
  flakeLabel = flakeReq.label;

  # The outputs nixlift reads, in the order it looks for them when none is named.
  knownOutputs = [ [ "colmenaHive" ] [ "colmena" ] [ "nixopsConfigurations" "default" ] [ "deploy" ] [ "nixosConfigurations" ] ];
  presentOutputs = filter (p: getPath p outputs != null) knownOutputs;

  kindOf = path: value:
    let first = head path; in
    if first == "colmenaHive" then "colmenaHive"
    else if first == "colmena" then "colmena"
    else if first == "nixopsConfigurations" then "nixops"
    else if first == "deploy" && length path == 1 then "deploy"
    else if first == "nixosConfigurations" then (if length path == 1 then "nixosConfigurations" else "nixosConfiguration")
    # an output of another name: by its shape
    else if isAttrs value && value ? __schema then "colmenaHive"
    else if isAttrs value && value ? nodes && isAttrs value.nodes then "deploy"
    else if isAttrs value && value ? config && value ? options then "nixosConfiguration"
    else fail "the flake ${flakeLabel} has an output `${showPath path}`, but it is none of the kinds nixlift reads (a colmena hive, deploy-rs' `deploy`, NixOps' `nixopsConfigurations.default`, `nixosConfigurations` or one NixOS configuration)";

  outputList = concatStringsSep ", " (map showPath knownOutputs);
  chosen =
    if flakeReq.attr == null then
      (if presentOutputs == [ ] then
        fail "the flake ${flakeLabel} has none of the outputs nixlift reads (${outputList}); its outputs: ${concatStringsSep ", " (attrNames outputs)}"
      else let path = head presentOutputs; in { inherit path; value = getPath path outputs; kind = kindOf path (getPath path outputs); })
    else
      let path = filter (w: isString w && w != "") (builtins.split "\\." flakeReq.attr); in
      if path == [ ] then fail "the flake reference's attribute `${flakeReq.attr}` is empty"
      else if getPath path outputs != null then { inherit path; value = getPath path outputs; kind = kindOf path (getPath path outputs); }
      # as nixos-rebuild reads `.#pi3`: one machine of nixosConfigurations
      else if length path == 1 && getPath [ "nixosConfigurations" (head path) ] outputs != null then
        { path = [ "nixosConfigurations" (head path) ]; value = outputs.nixosConfigurations.${head path}; kind = "nixosConfiguration"; }
      else fail "the flake ${flakeLabel} has no output `${flakeReq.attr}`${if outputs ? nixosConfigurations then " and no nixosConfigurations.${flakeReq.attr}" else ""}; its outputs: ${concatStringsSep ", " (attrNames outputs)}";

  outputName = showPath chosen.path;
  sourceLabel = "${flakeLabel}#${outputName}";

  # --- NixOps, morph and colmena networks (files, colmena's raw hive, NixOps 2's network) -------

  # NixOps semantics: a network file is an attrset or a function of the network's arguments;
  # arguments it does not declare are not passed, missing ones take their defaults.
  callWith = value:
    if isFunction value
    then value (builtins.intersectAttrs (builtins.functionArgs value) networkArgs)
    else value;
  callNetwork = file: callWith (import file);

  # NixOps follows `require` with genericClosure: each file is read once, loops end.
  withRequires = start: genericClosure {
    startSet = start;
    operator = item: map (f: { key = toString f; file = f; net = callNetwork f; }) (toList (item.net.require or [ ]));
  };

  special = [ "network" "meta" "defaults" "resources" "require" "nixpkgs" "_file" ];

  # nixpkgs may be a path, a string, a flake input (outPath) or an instantiated package set
  # (morph's `network.pkgs`, colmena's `meta.nixpkgs = import <nixpkgs> {}`: it has `path`).
  nixpkgsPath = what: v:
    if isAttrs v then
      (if v ? path then v.path
       else if v ? outPath then v.outPath
       else fail "${what} is an attribute set without `path` or `outPath`; give the path of a nixpkgs checkout instead")
    else v;

  # colmena's hermetic mode (its flake output `colmena`): nixpkgs must be an instantiated
  # package set, since nothing may come from <nixpkgs> or be imported from a path.
  hermeticPkgs = what: v:
    let uninitialized = kind: fail "${what} in ${sourceLabel} is ${kind}; in a flake colmena (and nixlift) need an instantiated package set: ${what} = import nixpkgs { system = \"x86_64-linux\"; };"; in
    if builtins.typeOf v == "path" || isString v || (isAttrs v && v ? outPath && !(v ? path)) then uninitialized "a path to nixpkgs"
    else if isFunction v then uninitialized "a nixpkgs function"
    else if isAttrs v && v ? outputs then uninitialized "an uninitialized nixpkgs flake input"
    else if isAttrs v && v ? path then v
    else fail "${what} in ${sourceLabel} must be an instantiated nixpkgs package set";

  searchPathHasNixpkgs = builtins.any (e: e.prefix == "nixpkgs" || e.prefix == "") builtins.nixPath;

  # mode: "files" (NixOps 1, morph, colmena's hive.nix), "colmena" (hermetic), "nixops" (NixOps 2
  # flake: machines made with its `nixpkgs` input's lib.nixosSystem)
  networkOf = { mode, loaded }:
    let
      names = unique (concatMap (l: filter (n: !(elem n special)) (attrNames l.net)) loaded);

      # `network` (NixOps, morph) and `meta` (colmena) say the same kind of things; later files win.
      meta = foldl' (acc: l:
        if mode == "colmena" && l.net ? meta && l.net ? network
        then fail "${sourceLabel} sets both `meta` and `network`; colmena takes one of them (`meta`)"
        else acc // (l.net.network or { }) // (l.net.meta or { })
             // (if l.net ? nixpkgs && mode != "nixops" then { nixpkgs = l.net.nixpkgs; } else { }))
        { } loaded;

      nixopsNixpkgs =
        let found = filter (l: l.net ? nixpkgs) loaded; in
        if found == [ ] then fail "${sourceLabel} has no `nixpkgs` attribute; NixOps 2 (and nixlift) build its machines with that nixpkgs' lib.nixosSystem: nixopsConfigurations.default = { inherit nixpkgs; … };"
        else (head found).net.nixpkgs;

      defaultNixpkgs =
        if mode == "colmena" then
          (if meta ? nixpkgs then hermeticPkgs "meta.nixpkgs" meta.nixpkgs
           else fail "meta.nixpkgs must be set in ${sourceLabel} (colmena's hermetic mode: nothing comes from <nixpkgs>)")
        else if meta ? nixpkgs then nixpkgsPath "network.nixpkgs" meta.nixpkgs
        else if meta ? pkgs then nixpkgsPath "network.pkgs" meta.pkgs
        else if searchPathHasNixpkgs then <nixpkgs>
        else fail "no nixpkgs to evaluate the machines with: set network.nixpkgs in the network file, pass --nixpkgs PATH or -I nixpkgs=PATH, or set NIX_PATH";

      nixpkgsFor = name:
        if (meta.nodeNixpkgs or { }) ? ${name} then
          (if mode == "colmena" then hermeticPkgs "meta.nodeNixpkgs.${name}" meta.nodeNixpkgs.${name}
           else nixpkgsPath "meta.nodeNixpkgs.${name}" meta.nodeNixpkgs.${name})
        else defaultNixpkgs;

      # Each piece keeps the file it came from, so module errors name the network file.
      modulesOf = what: file: value:
        if isList value then concatMap (modulesOf what file) value
        else if isFunction value || isAttrs value || builtins.isPath value
          || (isString value && builtins.substring 0 1 value == "/")
        then [ { _file = toString file; imports = [ value ]; } ]
        else fail "${what} in ${toString file} is ${describeValue value}; a machine is a NixOS module: { config, pkgs, ... }: { … }, an attribute set, or the path of a module file";

      describeValue = value:
        if isString value then "the string \"${value}\""
        else if builtins.isInt value || builtins.isFloat value then "the number ${toString value}"
        else if value == null then "null"
        else "a ${builtins.typeOf value}";

      defaults = concatMap (l: if l.net ? defaults then modulesOf "defaults" l.file l.net.defaults else [ ]) loaded;
      machineModules = name: concatMap (l: if l.net ? ${name} then modulesOf "machine '${name}'" l.file l.net.${name} else [ ]) loaded;

      specialArgsFor = name: { inherit name nodes deploymentName uuid; resources = { }; }
        // (meta.specialArgs or { })
        // ((meta.nodeSpecialArgs or { }).${name} or { });
      modulesFor = name: [
        ./deployment.nix
        ({ lib, ... }: { networking.hostName = lib.mkDefault name; })
      ] ++ defaults ++ machineModules name;

      evalMachine = name:
        if mode == "nixops" then
          nixopsNixpkgs.lib.nixosSystem {
            system = builtins.currentSystem;
            specialArgs = specialArgsFor name;
            modules = modulesFor name;
          }
        else if mode == "colmena" then
          let npkgs = nixpkgsFor name; in
          import "${toString npkgs.path}/nixos/lib/eval-config.nix" {
            # colmena: the system is the instantiated package set's
            inherit (npkgs) system;
            specialArgs = specialArgsFor name;
            modules = [
              ({ lib, ... }: { nixpkgs.overlays = lib.mkBefore (npkgs.overlays or [ ]); })
            ] ++ modulesFor name;
          }
        else
          import "${toString (nixpkgsFor name)}/nixos/lib/eval-config.nix" {
            # As nixos-rebuild does: the deploying machine's system is only a default (mkDefault);
            # a machine that names its own (nixpkgs.localSystem, .system, .hostPlatform) keeps it.
            system = builtins.currentSystem;
            specialArgs = specialArgsFor name;
            modules = modulesFor name;
          };

      nodes = listToAttrs (map (name: { inherit name; value = evalMachine name; }) names);

      # accepted from NixOps 2 and kept in no state: said once, at run time
      unusedNetwork = filter (n: meta ? ${n}) [ "storage" "lock" "enableRollback" ];
    in
    networkSettings meta // {
      inherit names;
      nixConfig = meta.nixConfig or { };
      ordering = meta.ordering.tags or [ ];
      notices = map (n:
        if n == "enableRollback" then "network.enableRollback: nixlift always keeps the hosts' earlier generations (nixlift rollback); the option is not needed"
        else "network.${n}: accepted and not used (nixlift keeps no state of its own: it reads the hosts)") unusedNetwork;
      system = name: nodes.${name};
      deployment = name: nodes.${name}.config.deployment;
      drvPath = name: nodes.${name}.config.system.build.toplevel.drvPath;
      profiles = name: [ ];
    };

  # The network's own settings, as a NixOps network / colmena meta / hive metaConfig names them;
  # formats without any (nixosConfigurations, deploy-rs) take `networkSettings { }`.
  networkSettings = meta: {
    description = meta.description or "";
    nixConfig = { };
    cache = meta.cache or null;
    machinesFile = if meta.machinesFile or null == null then null else toString meta.machinesFile;
    allowApplyAll = meta.allowApplyAll or true;
    ordering = [ ];
    notices = [ ];
  };

  # --- colmena's evaluated hive (colmena.lib.makeHive, the flake output colmenaHive) -----------

  colmenaHiveOf = hive:
    let
      schema = hive.__schema or null;
      checked =
        if schema == null then fail "${sourceLabel} is not a hive made by colmena.lib.makeHive (it has no __schema); a raw hive goes in the output `colmena`"
        else if schema != "v0.5" then fail "${sourceLabel} has __schema = \"${toString schema}\"; nixlift reads colmena's hive schema v0.5 (colmena 0.4's makeHive)"
        else hive;
      meta = checked.metaConfig or { };
    in
    networkSettings meta // {
      names = attrNames checked.nodes;
      system = name: checked.nodes.${name};
      deployment = name: checked.deploymentConfig.${name};
      drvPath = name: (checked.evalSelectedDrvPaths [ name ]).${name};
      profiles = name: [ ];
    };

  # --- nixos-rebuild's nixosConfigurations (evaluated by the user's flake) ---------------------

  nixosConfigurationsOf = configs:
    let
      names = filter (n: isAttrs configs.${n} && configs.${n} ? config) (attrNames configs);
      hasOptions = c: c ? options && c.options ? deployment;
      deploymentOf = name:
        let c = configs.${name}; in
        if hasOptions c then
          # nixlift's options module imported: its settings, the machine's name as the target
          # unless the configuration names one
          c.config.deployment // (if c.options.deployment.targetHost.highestPrio or 0 >= 1500 then { targetHost = name; } else { })
        else
          # no deployment options: reached as root at the attribute's name, ssh settings from the
          # user's ssh config and NIX_SSHOPTS
          { targetHost = name; targetUser = "root"; sshOptions = req.sshOptions or [ ]; };
    in
    networkSettings { } // {
      inherit names;
      system = name: configs.${name};
      deployment = deploymentOf;
      drvPath = name: configs.${name}.config.system.build.toplevel.drvPath;
      profiles = name: [ ];
    };

  # --- deploy-rs' `deploy` (nodes, profiles, settings at three levels) --------------------------

  deployRsOf = deploy:
    let
      nodesSet = deploy.nodes or (fail "${sourceLabel} has no `nodes`");
      names = attrNames nodesSet;
      top = deploy;
      nodeOf = name:
        let n = nodesSet.${name}; in
        if !(n ? hostname) then fail "deploy.nodes.${name} in ${sourceLabel} has no hostname; deploy-rs (and nixlift) need it: deploy.nodes.${name}.hostname = \"${name}.example.org\";"
        else n;
      profilesOf = name: (nodeOf name).profiles or { };
      # deploy-rs' precedence: profile > node > top (the first one set wins)
      setting = name: profile: key: firstNonNull [ (profile.${key} or null) ((nodeOf name).${key} or null) (top.${key} or null) ];
      orDefault = d: v: if v == null then d else v;
      systemProfile = name:
        let p = profilesOf name; in
        if p ? system then p.system
        else fail "deploy.nodes.${name} in ${sourceLabel} has no `system` profile; nixlift deploys a NixOS system to every node (profiles.system.path = deploy-rs.lib.x86_64-linux.activate.nixos self.nixosConfigurations.${name};)";
      deploymentOf = name:
        let
          p = systemProfile name;
          s = setting name p;
          user = s "user";
          sudo = s "sudo";
        in
        if user != null && user != "root" then fail "deploy.nodes.${name}.profiles.system in ${sourceLabel} has user = \"${user}\"; a NixOS system profile is activated as root"
        else {
          targetHost = (nodeOf name).hostname;
          targetUser = s "sshUser";
          sshOptions = (p.sshOpts or [ ]) ++ ((nodeOf name).sshOpts or [ ]) ++ (top.sshOpts or [ ]);
          hasFastConnection = orDefault false (s "fastConnection");
          autoRollback = orDefault true (s "autoRollback");
          magicRollback = orDefault true (s "magicRollback");
          confirmTimeout = orDefault 30 (s "confirmTimeout");
          activationTimeout = orDefault 240 (s "activationTimeout");
          buildOnTarget = orDefault false (s "remoteBuild");
          interactiveSudo = orDefault false (s "interactiveSudo");
        } // (if sudo == null then { } else { privilegeEscalationCommand = words sudo ++ [ "root" ]; });
      otherProfiles = name:
        let
          all = profilesOf name;
          order = (nodeOf name).profilesOrder or [ ];
          missing = filter (p: !(all ? ${p})) order;
        in
        if missing != [ ] then fail "deploy.nodes.${name}.profilesOrder in ${sourceLabel} names ${concatStringsSep ", " missing}, not a profile of the node"
        else filter (p: p != "system") (unique (order ++ attrNames all));
      profileOf = name: pname:
        let
          p = (profilesOf name).${pname};
          s = setting name p;
          user = firstNonNull [ (s "user") (s "sshUser") ];
        in
        if !(p ? path) then fail "deploy.nodes.${name}.profiles.${pname} in ${sourceLabel} has no path"
        else if user == null then fail "deploy.nodes.${name}.profiles.${pname} in ${sourceLabel}: no user to install it for; set `user` (or `sshUser`)"
        else {
          name = pname;
          path = p.path.outPath;
          drvPath = p.path.drvPath;
          inherit user;
          profilePath = p.profilePath or null;
          autoRollback = orDefault true (s "autoRollback");
          activationTimeout = orDefault 240 (s "activationTimeout");
        };
      settingNotices = name:
        let
          p = systemProfile name;
          tempPath = setting name p "tempPath";
          others = otherProfiles name;
          ownLogin = filter (pn: let q = (profilesOf name).${pn}; in q ? sshUser || q ? sshOpts) others;
        in
        (if tempPath != null then [ "deploy.nodes.${name}: tempPath is not used (nixlift keeps its confirmation in /run/nixlift on the host)" ] else [ ])
        ++ map (pn: "deploy.nodes.${name}.profiles.${pn}: its own sshUser/sshOpts are not used (nixlift logs in once per node, as the system profile's sshUser, and installs the profile as its user)") ownLogin;
    in
    networkSettings { } // {
      inherit names;
      notices = concatMap settingNotices names;
      system = name: { config.system.build.toplevel = (systemProfile name).path; };
      deployment = deploymentOf;
      drvPath = name: (systemProfile name).path.drvPath;
      profiles = name: map (profileOf name) (otherProfiles name);
      activation = "deploy-rs";
    };

  # --- the network, whatever it came from ------------------------------------------------------

  rawHive = v: if isFunction v || (isAttrs v && v ? __functor) then v { } else v;

  net =
    if flakeReq == null then
      networkOf { mode = "files"; loaded = withRequires (map (f: { key = toString f; file = f; net = callNetwork f; }) req.files); }
    else if chosen.kind == "colmenaHive" then colmenaHiveOf chosen.value
    else if chosen.kind == "colmena" then
      networkOf { mode = "colmena"; loaded = [ { file = sourceLabel; net = rawHive chosen.value; } ]; }
    else if chosen.kind == "nixops" then
      networkOf { mode = "nixops"; loaded = withRequires [ { key = sourceLabel; file = sourceLabel; net = callWith chosen.value; } ]; }
    else if chosen.kind == "deploy" then deployRsOf chosen.value
    else if chosen.kind == "nixosConfigurations" then nixosConfigurationsOf chosen.value
    else nixosConfigurationsOf { ${builtins.elemAt chosen.path (length chosen.path - 1)} = chosen.value; };

  names = net.names;

  deploymentName = req.deploymentName;
  uuid =
    let h = builtins.hashString "sha256" "nixlift-deployment:${deploymentName}";
        s = builtins.substring;
    in "${s 0 8 h}-${s 8 4 h}-${s 12 4 h}-${s 16 4 h}-${s 20 12 h}";

  # --- selection: --on/--exclude, then morph's --tagged, ordering, --skip/--every/--limit ------

  tagsOf = name: (net.deployment name).tags or [ ];

  matches = name: pattern:
    if pattern.kind == "tag" then elem pattern.value (tagsOf name)
    else if pattern.kind == "name" then pattern.value == name
    else builtins.match pattern.value name != null;

  included = if req.include == null then names
             else filter (name: builtins.any (matches name) req.include) names;
  tagged = filter (name: builtins.all (t: elem t (tagsOf name)) (req.tagged or [ ])) included;
  kept = filter (name: !(builtins.any (matches name) req.exclude)) tagged;

  # morph's network.ordering.tags: the hosts of the first tag, then those of the next, …, then
  # the rest, each group in the network's order
  ordered =
    let
      step = acc: tag: {
        done = acc.done ++ filter (n: elem tag (tagsOf n)) acc.rest;
        rest = filter (n: !(elem tag (tagsOf n))) acc.rest;
      };
      split = foldl' step { done = [ ]; rest = kept; } net.ordering;
    in split.done ++ split.rest;

  skip = req.skip or 0;
  every = req.every or 1;
  limit = req.limit or 0;
  indexed = builtins.genList (i: { index = i; name = builtins.elemAt ordered (i + skip); })
    (if skip >= length ordered then 0 else length ordered - skip);
  everyNth = map (x: x.name) (filter (x: x.index - (x.index / every) * every == 0) indexed);
  selected = if limit > 0 && limit < length everyNth then builtins.genList (builtins.elemAt everyNth) limit else everyNth;

  # --- what Python gets --------------------------------------------------------------------------

  # What Python gets of deployment.*: everything but secret material.
  publicDeployment = d: d // {
    keys = builtins.mapAttrs (_: k: builtins.removeAttrs k [ "text" ] // {
      source = if k.text or null != null then "text" else if k.keyFile or null != null then "keyFile" else if k.keyCommand or null != null then "keyCommand" else "none";
    }) (d.keys or { });
  };

  # deployment.keys.<name>.text, given to Python (on nix's stdout, never in a file or the store)
  # only when it uploads keys, apart from the options it prints
  keyTexts = d:
    let keys = d.keys or { }; in
    if req.keyTexts or false
    then listToAttrs (map (n: { name = n; value = keys.${n}.text; })
                          (filter (n: keys.${n}.text or null != null) (attrNames keys)))
    else { };

  describeDeployment = name:
    let d = net.deployment name; in {
      inherit name;
      deployment = publicDeployment d;
      keyTexts = keyTexts d;
    };

  describeMachine = name:
    let
      evaluated = net.system name;
      toplevel = evaluated.config.system.build.toplevel;
      pkgs = evaluated.pkgs or evaluated.config._module.args.pkgs or null;
      d = net.deployment name;
    in {
      inherit name;
      # The system the toplevel derivation must be built on: this, not the deployer's, decides
      # where it can be built.
      system = toplevel.system;
      hostPlatform = if pkgs == null then toplevel.system else pkgs.stdenv.hostPlatform.system or toplevel.system;
      deployment = publicDeployment d;
      keyTexts = keyTexts d;
      drvPath = net.drvPath name;
      # (not `outPath`: toJSON would turn the whole set into that string)
      toplevel = toplevel.outPath;
      profiles = net.profiles name;
      # deploy-rs' system profile is switched to with its own deploy-rs-activate
      activation = net.activation or "switch-to-configuration";
    };

  probe = {
    outputs = attrNames outputs;
    known = map showPath presentOutputs;
  };
in
if req.probe or false then probe else
# only the names (shell completion): no machine, option or nixpkgs is evaluated
if req.namesOnly or false then { inherit names; } else
# With `announce`, the selected machines' deployment options (no key material) come first, as
# one `trace: {"nixliftHosts": …}` line on stderr, before any system is evaluated: the deployer
# opens its SSH connections while the rest of the evaluation goes on.
(if req.announce or false
 then builtins.trace (builtins.toJSON {
   nixliftHosts = map (name: { inherit name; deployment = publicDeployment (net.deployment name); }) selected;
 })
 else (x: x))
{
  network = {
    inherit (net) description nixConfig machinesFile allowApplyAll ordering notices;
    # the evaluating (and building) machine's own system
    localSystem = builtins.currentSystem;
    # a binary cache for the fleet: a store URL, or { store; secretKeyFile; url; }. Paths are
    # kept as strings: a path turned into JSON is copied into the store, and this one is a key.
    cache =
      let c = net.cache;
      in if isAttrs c then builtins.mapAttrs (_: v: if builtins.isPath v then toString v else v) c
         else if builtins.isPath c then toString c
         else c;
    inherit names;
    output = if flakeReq == null then null else outputName;
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
