{ lib }:
let
  release = "24.05";
  versionSuffix = ".standin";
in
rec {
  id = x: x;
  const = x: _: x;
  flip = f: a: b: f b a;
  pipe = builtins.foldl' (x: f: f x);
  concat = x: y: x ++ y;
  "or" = x: y: x || y;
  and = x: y: x && y;
  mergeAttrs = x: y: x // y;
  boolToString = b: if b then "true" else "false";
  mod = base: int: base - (int * (builtins.div base int));
  min = x: y: if x < y then x else y;
  max = x: y: if x > y then x else y;
  compare = a: b: if a < b then -1 else if a > b then 1 else 0;
  mapNullable = f: a: if a == null then a else f a;

  inherit release versionSuffix;
  version = release + versionSuffix;
  codeName = "Standin";
  oldestSupportedRelease = 2311;
  isInOldestRelease = r: r <= oldestSupportedRelease;
  inNixShell = builtins.getEnv "IN_NIX_SHELL" != "";

  inherit (builtins) isFunction functionArgs seq deepSeq;
  setFunctionArgs = f: args: { __functor = self: f; __functionArgs = args; };
  toFunction = v: if isFunction v then v else _: v;

  importJSON = path: builtins.fromJSON (builtins.readFile path);

  # Same switch as the real lib: NIX_ABORT_ON_WARN turns warnings into errors.
  warn = msg:
    if builtins.elem (builtins.getEnv "NIX_ABORT_ON_WARN") [ "1" "true" "yes" ]
    then builtins.throw "warning: ${msg} (NIX_ABORT_ON_WARN is set)"
    else builtins.trace "warning: ${msg}";
  warnIf = cond: msg: if cond then warn msg else x: x;
  warnIfNot = cond: msg: if cond then x: x else warn msg;
  throwIf = cond: msg: if cond then throw msg else x: x;
  throwIfNot = cond: msg: if cond then x: x else throw msg;
  info = msg: builtins.trace "INFO: ${msg}";
  showWarnings = warnings: res: builtins.foldl' (r: w: warn w r) res warnings;
}
