# Option types. Each has `name`, `description`, `check` and `merge loc defs`
# (defs = [ { file; value; } ], already type-checked), as in the real lib.
{ lib }:
let
  inherit (lib) head length elem filter concatMap concatStringsSep isAttrs isList
    isFunction isString isInt isBool mapAttrs showOption showFiles getFiles getValues
    mergeEqualOption mergeOneOption mergeDefaultOption mergeUniqueOption last;
  inherit (lib.modules) mergeDefinitions;

  isType = t: x: (x._type or "") == t;
  setType = typeName: value: value // { _type = typeName; };

  defaultFunctor = name: {
    inherit name;
    type = types.${name} or null;
    wrapped = null;
    payload = null;
    binOp = a: b: null;
  };

  # Two declarations of one option merge their types when both are the "same kind"
  # (e.g. two submodules: their modules are combined).
  defaultTypeMerge = f: f':
    if f.name != f'.name then null
    else if f.payload != null then
      (let p = f.binOp f.payload f'.payload; in if p == null then null else f.type p)
    else if f.wrapped != null then
      (let w = f.wrapped.typeMerge f'.wrapped.functor; in if w == null then null else f.type w)
    else f.type;

  mkOptionType =
    { name
    , description ? null
    , descriptionClass ? null
    , check ? (x: true)
    , merge ? mergeDefaultOption
    , emptyValue ? { }
    , getSubOptions ? prefix: { }
    , getSubModules ? null
    , substSubModules ? m: null
    , functor ? defaultFunctor name
    , typeMerge ? defaultTypeMerge functor
    , deprecationMessage ? null
    , nestedTypes ? { }
    }:
    {
      _type = "option-type";
      inherit name check merge emptyValue getSubOptions getSubModules substSubModules
        typeMerge functor deprecationMessage nestedTypes descriptionClass;
      description = if description == null then name else description;
    };

  # "list of (null or string)" but "list of string", like the real descriptions.
  phraseWith = classes: t:
    if elem (t.descriptionClass or null) classes then t.description else "(${t.description})";
  phrase = phraseWith [ "noun" "composite" ];

  addCheck = elemType: check: elemType // { check = x: elemType.check x && check x; };

  # One definition per attribute name, each still carrying its file.
  pushPositions = map (def: mapAttrs (n: v: { inherit (def) file; value = v; }) def.value);

  attrsWith = lazy: elemType: mkOptionType {
    name = if lazy then "lazyAttrsOf" else "attrsOf";
    description = (if lazy then "lazy attribute set of " else "attribute set of ") + phrase elemType;
    descriptionClass = "composite";
    check = isAttrs;
    merge = loc: defs:
      let
        perName = builtins.zipAttrsWith
          (name: defs: mergeDefinitions (loc ++ [ name ]) elemType defs)
          (pushPositions defs);
      in
      if lazy
      # Names stay even when their definitions vanish (mkIf false): accessing one errors.
      then mapAttrs (n: m: m.optionalValue.value or elemType.emptyValue.value or m.mergedValue) perName
      else mapAttrs (n: m: m.mergedValue) (lib.filterAttrs (n: m: m.isDefined) perName);
    emptyValue = { value = { }; };
    getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "<name>" ]);
    getSubModules = elemType.getSubModules;
    substSubModules = m: attrsWith lazy (elemType.substSubModules m);
    functor = (defaultFunctor (if lazy then "lazyAttrsOf" else "attrsOf")) // { wrapped = elemType; };
    nestedTypes.elemType = elemType;
  };

  ints =
    let
      between = lowest: highest:
        assert lib.assertMsg (lowest <= highest) "ints.between: lowest must be smaller than highest";
        addCheck types.int (x: x >= lowest && x <= highest) // {
          name = "intBetween";
          description = "integer between ${toString lowest} and ${toString highest} (both inclusive)";
        };
      unsign = bits: range: addCheck types.int (x: x >= 0 && x < range) // {
        name = "unsignedInt${toString bits}";
        description = "${toString bits} bit unsigned integer; between 0 and ${toString (range - 1)} (both inclusive)";
      };
      sign = bits: range: addCheck types.int (x: x >= -range && x < range) // {
        name = "signedInt${toString bits}";
        description = "${toString bits} bit signed integer; between ${toString (-range)} and ${toString (range - 1)} (both inclusive)";
      };
    in
    {
      inherit between;
      unsigned = addCheck types.int (x: x >= 0) // {
        name = "unsignedInt";
        description = "unsigned integer, meaning >=0";
      };
      positive = addCheck types.int (x: x > 0) // {
        name = "positiveInt";
        description = "positive integer, meaning >0";
      };
      u8 = unsign 8 256;
      u16 = unsign 16 65536;
      u32 = unsign 32 4294967296;
      s8 = sign 8 128;
      s16 = sign 16 32768;
      s32 = sign 32 2147483648;
    };

  types = rec {
    inherit isType setType;

    unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; descriptionClass = "noun"; };

    raw = mkOptionType { name = "raw"; description = "raw value"; descriptionClass = "noun"; merge = mergeOneOption; };

    # Sets merge per attribute, functions merge their results, lists and
    # everything else must agree.
    anything = mkOptionType {
      name = "anything";
      description = "anything";
      descriptionClass = "noun";
      merge = loc: defs:
        let
          kind = v: if lib.isDerivation v then "derivation" else builtins.typeOf v;
          k = kind (head defs).value;
        in
        if lib.any (d: kind d.value != k) defs then
          throw "The option `${showOption loc}' has conflicting option types in ${showFiles (getFiles defs)}"
        else if k == "set" then (attrsOf anything).merge loc defs
        else if k == "list" then
          (if length defs > 1
           then throw "The option `${showOption loc}' has conflicting definitions, in ${showFiles (getFiles defs)}."
           else (listOf anything).merge loc defs)
        else if k == "lambda" then
          arg: anything.merge (loc ++ [ "<function body>" ]) (map (d: d // { value = d.value arg; }) defs)
        else if k == "derivation" then mergeOneOption loc defs
        else mergeEqualOption loc defs;
    };

    bool = mkOptionType { name = "bool"; description = "boolean"; descriptionClass = "noun"; check = isBool; merge = mergeEqualOption; };
    int = mkOptionType { name = "int"; description = "signed integer"; descriptionClass = "noun"; check = isInt; merge = mergeEqualOption; };
    inherit ints;
    port = ints.u16;
    float = mkOptionType { name = "float"; description = "floating point number"; descriptionClass = "noun"; check = builtins.isFloat; merge = mergeEqualOption; };
    number = either int float;

    str = mkOptionType { name = "str"; description = "string"; descriptionClass = "noun"; check = isString; merge = mergeEqualOption; };
    nonEmptyStr = mkOptionType {
      name = "nonEmptyStr";
      description = "non-empty string";
      descriptionClass = "noun";
      check = x: isString x && builtins.match "[ \t\n]*" x == null;
      merge = mergeEqualOption;
    };
    singleLineStr = addCheck str (x: builtins.match "[^\n\r]*\n?" x != null) // {
      name = "singleLineStr";
      description = "(optionally newline-terminated) single-line string";
    };
    strMatching = pattern: mkOptionType {
      name = "strMatching ${lib.strings.escapeNixString pattern}";
      description = "string matching the pattern ${pattern}";
      descriptionClass = "noun";
      check = x: isString x && builtins.match pattern x != null;
      merge = mergeEqualOption;
    };
    separatedString = sep: mkOptionType {
      name = "separatedString";
      description = if sep == "" then "Concatenated string" else "strings concatenated with ${builtins.toJSON sep}";
      descriptionClass = "noun";
      check = isString;
      merge = loc: defs: concatStringsSep sep (getValues defs);
      functor = (defaultFunctor "separatedString") // {
        payload = sep;
        binOp = a: b: if a == b then a else null;
      };
    };
    lines = separatedString "\n";
    commas = separatedString ",";
    envVar = separatedString ":";
    # Deprecated in the real lib, kept as the same plain concatenation.
    string = separatedString "";

    path = mkOptionType {
      name = "path";
      description = "absolute path";
      descriptionClass = "noun";
      check = x: lib.isStringLike x && builtins.substring 0 1 (toString x) == "/";
      merge = mergeEqualOption;
    };

    package = mkOptionType {
      name = "package";
      descriptionClass = "noun";
      check = x: lib.isDerivation x || lib.isStorePath x;
      merge = mergeOneOption;
    };

    attrs = mkOptionType {
      name = "attrs";
      description = "attribute set";
      descriptionClass = "noun";
      check = isAttrs;
      merge = loc: builtins.foldl' (res: def: res // def.value) { };
      emptyValue = { value = { }; };
    };
    pkgs = addCheck (unique { message = "A Nixpkgs pkgs set can not be merged with another pkgs set."; } attrs // {
      name = "pkgs";
      descriptionClass = "noun";
      description = "Nixpkgs package set";
    }) (x: (x._type or "pkgs") == "pkgs");

    listOf = elemType: mkOptionType {
      name = "listOf";
      description = "list of ${phrase elemType}";
      descriptionClass = "composite";
      check = isList;
      # Each element is a definition of its own, so mkIf works on elements.
      merge = loc: defs:
        map (x: x.value) (filter (x: x ? value) (lib.concatLists (lib.imap1
          (n: def: lib.imap1
            (m: v: (mergeDefinitions
              (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ])
              elemType
              [{ inherit (def) file; value = v; }]).optionalValue)
            def.value)
          defs)));
      emptyValue = { value = [ ]; };
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "*" ]);
      getSubModules = elemType.getSubModules;
      substSubModules = m: listOf (elemType.substSubModules m);
      functor = (defaultFunctor "listOf") // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };
    nonEmptyListOf = elemType: addCheck (listOf elemType) (l: l != [ ]) // {
      description = "non-empty ${(listOf elemType).description}";
      emptyValue = { };
    };

    attrsOf = attrsWith false;
    lazyAttrsOf = attrsWith true;

    nullOr = elemType: mkOptionType {
      name = "nullOr";
      description = "null or ${phraseWith [ "noun" "conjunction" ] elemType}";
      descriptionClass = "conjunction";
      check = x: x == null || elemType.check x;
      merge = loc: defs:
        let nulls = lib.count (d: d.value == null) defs; in
        if nulls == length defs then null
        else if nulls != 0 then
          throw "The option `${showOption loc}' is defined both null and not null, in ${showFiles (getFiles defs)}."
        else elemType.merge loc defs;
      emptyValue = { value = null; };
      getSubOptions = elemType.getSubOptions;
      getSubModules = elemType.getSubModules;
      substSubModules = m: nullOr (elemType.substSubModules m);
      functor = (defaultFunctor "nullOr") // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    functionTo = elemType: mkOptionType {
      name = "functionTo";
      description = "function that evaluates to a(n) ${phrase elemType}";
      descriptionClass = "composite";
      check = isFunction;
      merge = loc: defs: {
        # An argument has a default only if it has one in every definition.
        __functionArgs = builtins.zipAttrsWith (_: lib.all (x: x))
          (map (d: lib.functionArgs d.value) defs);
        __functor = _: fnArgs:
          (mergeDefinitions (loc ++ [ "<function body>" ]) elemType
            (map (d: { inherit (d) file; value = d.value fnArgs; }) defs)).mergedValue;
      };
      functor = (defaultFunctor "functionTo") // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    unique = { message }: elemType: mkOptionType {
      name = "unique";
      inherit (elemType) description descriptionClass check emptyValue getSubOptions getSubModules;
      merge = mergeUniqueOption { inherit message; inherit (elemType) merge; };
      substSubModules = m: uniq (elemType.substSubModules m);
      functor = (defaultFunctor "unique") // { type = uniq; wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };
    uniq = unique { message = ""; };

    enum = values:
      let
        show = v:
          if isString v then ''"${v}"''
          else if isInt v then toString v
          else if isBool v then lib.boolToString v
          else "<${builtins.typeOf v}>";
      in
      mkOptionType {
        name = "enum";
        description =
          if values == [ ] then "impossible (empty enum)"
          else if length values == 1 then "value ${show (head values)} (singular enum)"
          else "one of ${lib.concatMapStringsSep ", " show values}";
        descriptionClass = if length values < 2 then "noun" else "conjunction";
        check = x: elem x values;
        merge = mergeEqualOption;
        functor = (defaultFunctor "enum") // { payload = values; binOp = a: b: lib.unique (a ++ b); };
      };

    either = t1: t2: mkOptionType rec {
      name = "either";
      description = "${phraseWith [ "noun" "conjunction" ] t1} or ${phraseWith [ "noun" "conjunction" "composite" ] t2}";
      descriptionClass = "conjunction";
      check = x: t1.check x || t2.check x;
      merge = loc: defs:
        let values = getValues defs; in
        if lib.all t1.check values then t1.merge loc defs
        else if lib.all t2.check values then t2.merge loc defs
        else mergeOneOption loc defs;
      typeMerge = f':
        let
          m1 = t1.typeMerge (builtins.elemAt f'.wrapped 0).functor;
          m2 = t2.typeMerge (builtins.elemAt f'.wrapped 1).functor;
        in
        if name == f'.name && m1 != null && m2 != null then functor.type m1 m2 else null;
      functor = (defaultFunctor name) // { wrapped = [ t1 t2 ]; };
      nestedTypes = { left = t1; right = t2; };
    };
    oneOf = ts:
      if ts == [ ] then throw "types.oneOf needs to get at least one type in its argument"
      else builtins.foldl' either (head ts) (lib.tail ts);

    coercedTo = coercedType: coerceFunc: finalType: mkOptionType {
      name = "coercedTo";
      description = "${phrase finalType} or ${phrase coercedType} convertible to it";
      check = x: (coercedType.check x && finalType.check (coerceFunc x)) || finalType.check x;
      merge = loc: defs:
        finalType.merge loc (map (d: d // {
          value = if finalType.check d.value then d.value else coerceFunc d.value;
        }) defs);
      typeMerge = _: null;
      nestedTypes = { inherit coercedType finalType; };
    };

    # A module as an option value, to be imported elsewhere.
    deferredModule = mkOptionType {
      name = "deferredModule";
      description = "module";
      descriptionClass = "noun";
      check = x: isAttrs x || isFunction x || path.check x;
      merge = loc: defs: {
        imports = map (d: lib.setDefaultModuleLocation "${d.file}, via option ${showOption loc}" d.value) defs;
      };
    };

    submodule = modules: submoduleWith {
      shorthandOnlyDefinesConfig = true;
      modules = lib.toList modules;
    };

    submoduleWith =
      { modules
      , specialArgs ? { }
      , shorthandOnlyDefinesConfig ? false
      , description ? null
      , class ? null
      }@attrs:
      let
        # A plain attrset definition is config (for `submodule`); anything else is a module.
        asModules = map (d:
          if isAttrs d.value && !(d.value ? outPath) && shorthandOnlyDefinesConfig
          then { _file = d.file; config = d.value; }
          else { _file = d.file; imports = [ d.value ]; });
        base = lib.modules.evalModules {
          inherit class specialArgs;
          modules = [{ _module.args.name = lib.mkOptionDefault "‹name›"; }] ++ modules;
        };
      in
      mkOptionType {
        name = "submodule";
        description = if description != null then description else "submodule";
        check = x: isAttrs x || isFunction x || path.check x;
        merge = loc: defs: (base.extendModules {
          modules = [{ _module.args.name = last loc; }] ++ asModules defs;
          prefix = loc;
        }).config;
        emptyValue = { value = { }; };
        getSubOptions = prefix: (base.extendModules { inherit prefix; }).options;
        getSubModules = modules;
        substSubModules = m: submoduleWith (attrs // { modules = m; });
        functor = (defaultFunctor "submodule") // {
          type = submoduleWith;
          payload = { inherit modules specialArgs shorthandOnlyDefinesConfig description class; };
          binOp = lhs: rhs:
            if lhs.shorthandOnlyDefinesConfig != rhs.shorthandOnlyDefinesConfig then null
            else {
              modules = lhs.modules ++ rhs.modules;
              specialArgs = lhs.specialArgs // rhs.specialArgs;
              inherit (lhs) shorthandOnlyDefinesConfig;
              description = if lhs.description != null then lhs.description else rhs.description;
              class = if lhs.class != null then lhs.class else rhs.class;
            };
        };
      };

    inherit mkOptionType addCheck;
  };
in
types // {
  inherit isType setType mkOptionType defaultTypeMerge defaultFunctor;
  isOptionType = isType "option-type";
}
