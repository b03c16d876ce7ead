# The module system: the evaluation model of NixOS configurations, kept to the parts
# a deployment tool meets (strict checking, priorities, ordering, submodules).
{ lib }:
let
  inherit (lib) head tail length filter concatMap concatLists elem mapAttrs attrNames
    isAttrs isFunction isList showOption showFiles optional optionalAttrs
    mkOption types foldl' min;

  inherit (lib.options) showDefs;
  unknownFile = lib.options.unknownModule;

  # Every evaluation gets these internal options.
  internalModule = {
    _file = "nixpkgs/lib/modules.nix";
    key = "nixpkgs/lib/modules.nix#internal";
    options._module.args = mkOption {
      type = types.lazyAttrsOf types.raw;
      internal = true;
      description = "Additional arguments passed to each module.";
    };
    options._module.check = mkOption {
      type = types.bool;
      internal = true;
      default = true;
      description = "Whether to check whether all option definitions have matching declarations.";
    };
  };

  # Turns any module form into { _file key disabledModules imports options config }.
  unifyModule = file: key: m:
    let
      explicit = m ? config || m ? options;
      metaKeys = [ "_class" "_file" "key" "disabledModules" "imports" "meta" "freeformType" ];
      extra = removeAttrs m (metaKeys ++ [ "options" "config" ]);
    in
    if !isAttrs m then
      throw "Module `${file}' is of type ${builtins.typeOf m}, expected a function, an attribute set or a path."
    else if m ? freeformType then
      throw "Module `${file}' uses `freeformType', which the nixlift stand-in nixpkgs does not support."
    else if explicit && extra != { } then
      throw "Module `${key}' has an unsupported attribute `${head (attrNames extra)}'. This is caused by introducing a top-level `config' or `options' attribute. Add configuration attributes immediately on the top level instead, or move all of them (namely: ${toString (attrNames extra)}) into the explicit `config' attribute."
    else {
      _file = toString (m._file or file);
      key = toString (m.key or key);
      disabledModules = m.disabledModules or [ ];
      imports = m.imports or [ ];
      options = m.options or { };
      config = if explicit then m.config or { } else removeAttrs m metaKeys;
    };

  # Module functions only get the arguments they name; the ones nobody passes
  # directly are looked up lazily in `_module.args` (that is how `pkgs` arrives).
  applyModuleArgs = key: f: args@{ config, ... }:
    let
      lookup = name: _: builtins.addErrorContext
        "while evaluating the module argument `${name}' in \"${key}\":"
        (args.${name} or config._module.args.${name});
    in
    f (args // mapAttrs lookup (lib.functionArgs f));

  loadModule = args: file: key: m:
    if isFunction m then unifyModule file key (applyModuleArgs key m args)
    else if isList m then
      throw "Module imports can't be nested lists. Perhaps you meant to remove one level of lists? Definitions: ${lib.options.showValue m}"
    else if isAttrs m && !(m ? outPath) then unifyModule file key m
    else
      let path = toString m; imported = import m; in
      unifyModule path path (if isFunction imported then applyModuleArgs path imported args else imported);

  # All modules reachable through `imports`, each once (by key), minus disabled ones.
  collectModules = args: modulesPath: modules:
    let
      load = parent: n: m: loadModule args parent._file "${parent.key}:anon-${toString n}" m;
      closure = disabled: builtins.genericClosure {
        startSet = filter (m: !elem m.key disabled)
          ([ (loadModule args internalModule._file internalModule.key internalModule) ]
           ++ lib.imap1 (load { _file = unknownFile; key = ""; }) modules);
        operator = m: filter (c: !elem c.key disabled) (lib.imap1 (load m) m.imports);
      };
      disabledKey = d:
        if isAttrs d && d ? key then toString d.key
        else if builtins.isString d && !(lib.hasPrefix "/" d) && modulesPath != null
        then "${toString modulesPath}/${d}"
        else toString d;
      firstPass = closure [ ];
      disabled = map disabledKey (concatMap (m: m.disabledModules) firstPass);
    in
    if disabled == [ ] then firstPass else closure disabled;

  # Combine the declarations of all modules into one tree of options.
  mergeDeclarations = loc: decls:
    builtins.zipAttrsWith
      (name: sub:
        let
          here = loc ++ [ name ];
          opts = filter (d: lib.isOption d.value) sub;
        in
        if opts == [ ] then mergeDeclarations here sub
        else if length opts != length sub then
          throw "The option `${showOption here}' in `${(head opts).file}' is a prefix of options declared in ${showFiles (map (d: d.file) (filter (d: !lib.isOption d.value) sub))}."
        else mergeOptionDecls here opts)
      (map (d:
        if isAttrs d.value then mapAttrs (n: v: { inherit (d) file; value = v; }) d.value
        else throw "The option declarations at `${showOption loc}' in `${d.file}' are not an attribute set.")
        decls);

  mergeOptionDecls = loc: opts:
    let
      merged = foldl'
        (res: d:
          let
            o = d.value;
            type =
              if !(o ? type) then res.type
              else if res.type == null then o.type
              else res.type.typeMerge o.type.functor;
            twice = k: o ? ${k} && res ? ${k};
          in
          if twice "default" || twice "apply" || (o ? type && type == null) then
            throw "The option `${showOption loc}' in `${d.file}' is already declared in ${showFiles res.declarations}."
          else res // removeAttrs o [ "type" ] // {
            inherit type;
            declarations = res.declarations ++ [ d.file ];
          })
        { type = null; declarations = [ ]; }
        opts;
    in
    merged // {
      type = if merged.type == null then types.unspecified else merged.type;
      inherit loc;
    };

  # Walk the option tree with the definitions made at this level. Returns the
  # evaluated options, the config values and the definitions matching no option.
  mergeTree = loc: tree: defs:
    let
      pushed = concatMap
        (d: map
          (v:
            if isAttrs v && !(v ? _type) then { inherit (d) file; value = v; }
            else throw "In module `${d.file}', you're trying to define a value of type `${builtins.typeOf v}'\nrather than an attribute set for the option\n`${showOption loc}'!\nThis usually happens if `${showOption loc}' has option\ndefinitions inside that are not matched. Please check how to properly define\nthis option by e.g. referring to `man 5 configuration.nix'!")
          (pushDownProperties d.value))
        defs;
      byName = builtins.zipAttrsWith (n: ds: ds)
        (map (d: mapAttrs (n: v: { inherit (d) file; value = v; }) d.value) pushed);
      children = mapAttrs
        (name: node:
          if lib.isOption node then evalOptionValue (loc ++ [ name ]) node (byName.${name} or [ ])
          else mergeTree (loc ++ [ name ]) node (byName.${name} or [ ]))
        tree;
      isLeaf = name: lib.isOption tree.${name};
      unmatchedHere = concatLists (lib.mapAttrsToList
        (name: ds: if tree ? ${name} then [ ] else map (d: d // { prefix = [ name ]; }) ds)
        byName);
      unmatchedBelow = concatLists (lib.mapAttrsToList
        (name: c: if isLeaf name then [ ] else map (u: u // { prefix = [ name ] ++ u.prefix; }) c.unmatched)
        children);
    in
    {
      options = mapAttrs (name: c: if isLeaf name then c else c.options) children;
      config = mapAttrs (name: c: if isLeaf name then c.value else c.config) children;
      unmatched = unmatchedHere ++ unmatchedBelow;
    };

  evalOptionValue = loc: opt: defs:
    let
      withDefault =
        optional (opt ? default) { file = head opt.declarations; value = mkOptionDefault opt.default; }
        ++ defs;
      res =
        if opt.readOnly or false && length defs > 1 then
          throw "The option `${showOption loc}' is read-only, but it's set multiple times. Definition values:${showDefs defs}"
        else mergeDefinitions loc opt.type withDefault;
      value = if opt.apply or null != null then opt.apply res.mergedValue else res.mergedValue;
    in
    opt // {
      value = builtins.addErrorContext "while evaluating the option `${showOption loc}':" value;
      inherit (res.defsFinal') highestPrio;
      inherit (res) isDefined;
      definitions = map (d: d.value) res.defsFinal;
      definitionsWithLocations = res.defsFinal;
      files = map (d: d.file) res.defsFinal;
      options = opt.type.getSubOptions loc;
      __toString = _: showOption loc;
      _type = "option";
    };

  # Final definitions of one option: conditions applied, only the highest
  # priority kept, sorted by mkOrder; then type-checked and merged.
  mergeDefinitions = loc: type: defs: rec {
    defsFinal' =
      let
        discharged = concatMap
          (d: map (v: { inherit (d) file; value = v; })
            (builtins.addErrorContext "while evaluating definitions from `${d.file}':"
              (dischargeProperties d.value)))
          defs;
        filtered = filterOverrides' discharged;
      in
      {
        values =
          if lib.any (d: d.value._type or "" == "order") filtered.values
          then sortProperties filtered.values
          else filtered.values;
        inherit (filtered) highestPrio;
      };
    defsFinal = defsFinal'.values;
    isDefined = defsFinal != [ ];
    mergedValue =
      if !isDefined then throw "The option `${showOption loc}' is used but not defined."
      else if lib.all (d: type.check d.value) defsFinal then type.merge loc defsFinal
      else throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs (filter (d: !type.check d.value) defsFinal)}";
    optionalValue = if isDefined then { value = mergedValue; } else { };
  };

  # mkIf/mkMerge/mkOverride on a set of definitions move down onto its attributes,
  # so that undeclared names are found without evaluating any condition.
  pushDownProperties = cfg:
    let t = cfg._type or ""; in
    if t == "merge" then concatMap pushDownProperties cfg.contents
    else if t == "if" then map (mapAttrs (n: v: mkIf cfg.condition v)) (pushDownProperties cfg.content)
    else if t == "override" then map (mapAttrs (n: v: mkOverride cfg.priority v)) (pushDownProperties cfg.content)
    else [ cfg ];

  dischargeProperties = def:
    let t = def._type or ""; in
    if t == "merge" then concatMap dischargeProperties def.contents
    else if t == "if" then
      if !builtins.isBool def.condition then throw "‘mkIf’ called with a non-Boolean condition"
      else if def.condition then dischargeProperties def.content
      else [ ]
    else [ def ];

  unwrap = kind: d: if d.value._type or "" == kind then d // { value = d.value.content; } else d;

  filterOverrides = defs: (filterOverrides' defs).values;
  filterOverrides' = defs:
    let
      prio = d: if d.value._type or "" == "override" then d.value.priority else defaultOverridePriority;
      highestPrio = foldl' (p: d: min p (prio d)) 9999 defs;
    in
    {
      values = concatMap (d: if prio d == highestPrio then [ (unwrap "override" d) ] else [ ]) defs;
      inherit highestPrio;
    };

  # builtins.sort is stable, so equal priorities keep definition order.
  sortProperties = defs:
    let prio = d: if d.value._type or "" == "order" then d.value.priority else defaultOrderPriority; in
    map (unwrap "order") (builtins.sort (a: b: prio a < prio b) defs);

  evalModules = evalArgs@{ modules, prefix ? [ ], specialArgs ? { }, args ? { }, check ? true, class ? null }:
    let
      legacyModules =
        optional (evalArgs ? args) { config._module.args = args; }
        ++ optional (evalArgs ? check) { config._module.check = mkDefault check; };

      moduleArgs = { inherit lib options config specialArgs; _class = class; } // specialArgs;
      collected = collectModules moduleArgs (specialArgs.modulesPath or null)
        (legacyModules ++ modules);

      # The real lib visits modules last-collected first; list merges follow that order.
      ordered = lib.reverseList collected;
      tree = mergeDeclarations [ ] (map (m: { file = m._file; value = m.options; }) ordered);
      merged = mergeTree prefix tree (map (m: { file = m._file; value = m.config; }) ordered);
      inherit (merged) options config;

      checkUnmatched =
        if config._module.check && merged.unmatched != [ ] then
          let def = head merged.unmatched; in
          throw "The option `${showOption (prefix ++ def.prefix)}' does not exist. Definition values:${showDefs [ def ]}"
        else null;
      checked = builtins.seq checkUnmatched;

      extendModules = extendArgs@{ modules ? [ ], specialArgs ? { }, prefix ? [ ] }:
        evalModules (evalArgs // {
          modules = evalArgs.modules ++ modules;
          specialArgs = evalArgs.specialArgs or { } // specialArgs;
          prefix = extendArgs.prefix or evalArgs.prefix or [ ];
        });

      type = types.submoduleWith { inherit modules specialArgs class; };
    in
    {
      _type = "configuration";
      options = checked options;
      config = checked (removeAttrs config [ "_module" ]);
      _module = checked config._module;
      inherit extendModules type class;
    };

  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOrder = priority: content: { _type = "order"; inherit priority content; };

  defaultOverridePriority = 100;
  defaultOrderPriority = 1000;
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkImageMediaOverride = mkOverride 60;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;

  # Renaming helpers: the old path becomes an invisible option whose definitions
  # are forwarded (at their priority) to the new one.
  doRename = { from, to, visible ? false, warn ? true, withPriority ? true }:
    { config, options, ... }:
    let
      fromOpt = lib.getAttrFromPath from options;
      toOf = lib.attrByPath to (abort "Renaming error: option `${showOption to}' does not exist.");
    in
    {
      options = lib.setAttrByPath from (mkOption {
        inherit visible;
        description = "Alias of {option}`${showOption to}`.";
        apply = x: toOf config;
      });
      config = mkIf fromOpt.isDefined (mkMerge [
        (optionalAttrs (options ? warnings && warn) {
          warnings = [ "The option `${showOption from}' defined in ${showFiles fromOpt.files} has been renamed to `${showOption to}'." ];
        })
        (lib.setAttrByPath to
          (mkMerge (if withPriority then map (mkOverride fromOpt.highestPrio) fromOpt.definitions
                    else fromOpt.definitions)))
      ]);
    };
  mkRenamedOptionModule = from: to: doRename { inherit from to; };
  mkAliasOptionModule = from: to: doRename { inherit from to; visible = true; warn = false; };

  mkRemovedOptionModule = optionName: replacementInstructions: { options, ... }: {
    options = lib.setAttrByPath optionName (mkOption {
      visible = false;
      apply = x: throw "The option `${showOption optionName}' can no longer be used since it's been removed. ${replacementInstructions}";
    });
    config = optionalAttrs (options ? assertions) {
      assertions = let opt = lib.getAttrFromPath optionName options; in [{
        assertion = !opt.isDefined;
        message = "The option definition `${showOption optionName}' in ${showFiles opt.files} no longer has any effect; please remove it.\n${replacementInstructions}";
      }];
    };
  };

  setDefaultModuleLocation = file: m: { _file = file; imports = [ m ]; };
in
{
  inherit evalModules mergeDefinitions pushDownProperties dischargeProperties
    filterOverrides filterOverrides' sortProperties unifyModule collectModules
    mkIf mkMerge mkOverride mkOrder mkOptionDefault mkDefault mkImageMediaOverride
    mkForce mkVMOverride defaultOverridePriority defaultOrderPriority
    mkRenamedOptionModule mkAliasOptionModule mkRemovedOptionModule setDefaultModuleLocation;
  defaultPriority = defaultOverridePriority;
  mkBefore = mkOrder 500;
  mkAfter = mkOrder 1500;
  mkFixStrictness = x: x;
}
