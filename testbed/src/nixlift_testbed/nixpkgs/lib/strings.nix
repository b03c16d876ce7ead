{ lib }:
let
  inherit (builtins) concatStringsSep stringLength substring replaceStrings match filter isString
    length genList head;
in
rec {
  inherit (builtins) concatStringsSep stringLength substring replaceStrings match split
    isString compareVersions parseDrvName unsafeDiscardStringContext;

  concatStrings = concatStringsSep "";
  concatMapStrings = f: list: concatStrings (map f list);
  concatImapStrings = f: list: concatStrings (lib.lists.imap1 f list);
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  concatImapStringsSep = sep: f: list: concatStringsSep sep (lib.lists.imap1 f list);
  concatLines = list: concatMapStrings (s: s + "\n") list;
  intersperse = separator: list:
    if list == [ ] then [ ]
    else builtins.tail (builtins.concatMap (x: [ separator x ]) list);

  makeSearchPath = subDir: paths: concatStringsSep ":" (map (p: "${p}/${subDir}") paths);
  makeBinPath = makeSearchPath "bin";

  optionalString = cond: string: if cond then string else "";

  hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
  hasSuffix = suffix: content:
    let lc = stringLength content; ls = stringLength suffix; in
    lc >= ls && substring (lc - ls) lc content == suffix;
  hasInfix = infix: content: builtins.match ".*${escapeRegex infix}.*" "${content}" != null;

  removePrefix = prefix: str:
    if hasPrefix prefix str
    then substring (stringLength prefix) (stringLength str - stringLength prefix) str
    else str;
  removeSuffix = suffix: str:
    if hasSuffix suffix str
    then substring 0 (stringLength str - stringLength suffix) str
    else str;

  stringToCharacters = s: genList (p: substring p 1 s) (stringLength s);
  stringAsChars = f: s: concatMapStrings f (stringToCharacters s);

  escape = list: replaceStrings list (map (c: "\\${c}") list);
  escapeRegex = escape (stringToCharacters "\\[{()^$?*+|.");

  escapeShellArg = arg:
    let s = toString arg; in
    if match "[[:alnum:],._+:@%/-]+" s != null then s
    else "'${replaceStrings [ "'" ] [ "'\\''" ] s}'";
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;

  escapeNixString = s: escape [ "$" ] (builtins.toJSON s);
  escapeNixIdentifier = s:
    if match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null then s else escapeNixString s;

  lowerChars = stringToCharacters "abcdefghijklmnopqrstuvwxyz";
  upperChars = stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  toLower = replaceStrings upperChars lowerChars;
  toUpper = replaceStrings lowerChars upperChars;

  # `split` yields strings and match lists; only the strings are the pieces.
  splitString = sep: s:
    filter isString (builtins.split (escapeRegex (toString sep)) (toString s));

  trim = s:
    let m = match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s; in
    if m == null then "" else head m;

  fixedWidthString = width: filler: str:
    let strw = stringLength str; in
    if strw >= width then str else fixedWidthString width filler (filler + str);
  fixedWidthNumber = width: n: fixedWidthString width "0" (toString n);

  toInt = s:
    let m = match "[[:space:]]*(-?[0-9]+)[[:space:]]*" s; in
    if m == null then throw "Could not convert ${s} to int." else builtins.fromJSON (head m);

  versionOlder = v1: v2: builtins.compareVersions v2 v1 == 1;
  versionAtLeast = v1: v2: !versionOlder v1 v2;
  getName = x: (builtins.parseDrvName (x.name or x)).name;
  getVersion = x: (builtins.parseDrvName (x.name or x)).version;

  isStringLike = x: isString x || builtins.isPath x || x ? outPath || x ? __toString;
  isCoercibleToString = isStringLike;
  isStorePath = x:
    isStringLike x
    && (let s = toString x; in
      hasPrefix "${builtins.storeDir}/" s
      && match "[^/]+" (substring (stringLength builtins.storeDir + 1) (stringLength s) s) != null);

  fileContents = file: removeSuffix "\n" (builtins.readFile file);
}
