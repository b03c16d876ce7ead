{ lib }:
let
  inherit (lib) concatStringsSep concatMapStrings head length all filter take;
in
rec {
  # Same argument set as the real mkOption: unknown arguments are an error.
  mkOption =
    { default ? null, defaultText ? null, example ? null, description ? null
    , relatedPackages ? null, type ? null, apply ? null, internal ? null
    , visible ? null, readOnly ? null
    }@attrs:
    attrs // { _type = "option"; };

  mkEnableOption = name: mkOption {
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
    type = lib.types.bool;
  };

  mkPackageOption = pkgs: name:
    { nullable ? false, default ? name, example ? null, extraDescription ? "", pkgsText ? "pkgs" }:
    let
      namePath = lib.toList name;
      defaultPath = lib.toList default;
      pkg = lib.attrByPath defaultPath
        (throw "${concatStringsSep "." defaultPath} cannot be found in ${pkgsText}") pkgs;
    in
    mkOption ({
      type = if nullable then lib.types.nullOr lib.types.package else lib.types.package;
      description = "The ${concatStringsSep "." namePath} package to use." + extraDescription;
    } // lib.optionalAttrs (default != null) {
      default = pkg;
      defaultText = literalExpression "${pkgsText}.${concatStringsSep "." defaultPath}";
    } // lib.optionalAttrs (default == null) { default = null; }
      // lib.optionalAttrs (example != null) { inherit example; });

  isOption = lib.isType "option";

  literalExpression = text:
    if !builtins.isString text then throw "literalExpression expects a string."
    else { _type = "literalExpression"; inherit text; };
  literalExample = literalExpression;
  literalMD = text: { _type = "literalMD"; inherit text; };
  # Markdown is the only documentation format now, so this is the identity.
  mdDoc = x: x;

  getValues = map (x: x.value);
  getFiles = map (x: x.file);

  # Used by `raw`, `package` and friends: exactly one definition is allowed.
  mergeUniqueOption = { message, merge ? null }: loc: defs:
    if length defs == 1
    then (if merge == null then (head defs).value else merge loc defs)
    else throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique.\n${message}\nDefinition values:${showDefs defs}";
  mergeOneOption = mergeUniqueOption { message = ""; };

  mergeEqualOption = loc: defs:
    if defs == [ ] then abort "This case should never happen."
    else (builtins.foldl'
      (first: def:
        if def.value != first.value
        then throw "The option `${showOption loc}' has conflicting definition values:${showDefs [ first def ]}\nUse `lib.mkForce value` or `lib.mkDefault value` to change the priority on any of these definitions."
        else first)
      (head defs) defs).value;

  # The merge of `types.unspecified`: combine what obviously combines.
  mergeDefaultOption = loc: defs:
    let list = getValues defs; in
    if length list == 1 then head list
    else if all builtins.isFunction list then x: mergeDefaultOption loc (map (f: { file = "<function>"; value = f x; }) defs)
    else if all builtins.isList list then builtins.concatLists list
    else if all builtins.isAttrs list then builtins.foldl' (a: b: a // b) { } list
    else if all builtins.isBool list then builtins.foldl' (a: b: a || b) false list
    else if all builtins.isString list then lib.concatStrings list
    else if all builtins.isInt list && all (x: x == head list) list then head list
    else throw "Cannot merge definitions of `${showOption loc}'. Definition values:${showDefs defs}";

  showOption = parts:
    let
      special = [ "<name>" "{name}" "*" "<function body>" ];
      part = p: if builtins.elem p special then p else lib.strings.escapeNixIdentifier p;
    in
    concatStringsSep "." (map part parts);

  showFiles = files: concatStringsSep " and " (map (f: "`${f}'") files);

  # A short, single-line rendering of a value for error messages; never fails.
  showValue = v:
    let
      go = depth: v:
        if builtins.isString v then
          (let s = builtins.toJSON v; in
           if builtins.stringLength s > 120 then builtins.substring 0 117 s + "...\"" else s)
        else if builtins.isInt v || builtins.isFloat v then toString v
        else if builtins.isBool v then lib.boolToString v
        else if v == null then "null"
        else if builtins.isPath v then toString v
        else if builtins.isFunction v then "<function>"
        else if builtins.isList v then
          (if depth == 0 then "[ ... ]"
           else "[ " + concatMapStrings (x: go (depth - 1) x + " ") (take 5 v)
             + (if length v > 5 then "... " else "") + "]")
        else if lib.isDerivation v then "<derivation ${v.name or "?"}>"
        else if depth == 0 then "{ ... }"
        else "{ " + concatMapStrings
          (n: "${lib.strings.escapeNixIdentifier n} = ${go (depth - 1) v.${n}}; ")
          (take 8 (builtins.attrNames v))
          + (if length (builtins.attrNames v) > 8 then "... " else "") + "}";
      attempt = builtins.tryEval (go 2 v);
    in
    if attempt.success then attempt.value else "<error while showing the value>";

  showDefs = defs: concatMapStrings (def: "\n- In `${def.file}': ${showValue def.value}") defs;
  showOptionWithDefLocs = opt: "${showOption opt.loc}, with values defined in:\n" +
    concatMapStrings (f: "  - ${f}\n") opt.files;

  unknownModule = "<unknown-file>";
}
