{ lib }:
let
  inherit (builtins) head tail length attrNames getAttr hasAttr isAttrs listToAttrs;
in
rec {
  inherit (builtins) attrNames attrValues mapAttrs hasAttr getAttr listToAttrs isAttrs
    catAttrs intersectAttrs removeAttrs zipAttrsWith;

  nameValuePair = name: value: { inherit name value; };

  attrByPath = attrPath: default: set:
    if attrPath == [ ] then set
    else if isAttrs set && set ? ${head attrPath}
    then attrByPath (tail attrPath) default set.${head attrPath}
    else default;

  hasAttrByPath = attrPath: set:
    attrPath == [ ]
    || (isAttrs set && set ? ${head attrPath} && hasAttrByPath (tail attrPath) set.${head attrPath});

  setAttrByPath = attrPath: value:
    if attrPath == [ ] then value
    else { ${head attrPath} = setAttrByPath (tail attrPath) value; };

  getAttrFromPath = attrPath: set:
    let missing = throw "cannot find attribute `${builtins.concatStringsSep "." attrPath}'"; in
    attrByPath attrPath missing set;

  attrVals = names: set: map (n: set.${n}) names;
  getAttrs = names: set: listToAttrs (map (n: nameValuePair n set.${n}) names);

  filterAttrs = pred: set:
    listToAttrs (builtins.concatMap
      (name: let v = set.${name}; in if pred name v then [ (nameValuePair name v) ] else [ ])
      (attrNames set));

  filterAttrsRecursive = pred: set:
    listToAttrs (builtins.concatMap
      (name:
        let v = set.${name}; in
        if pred name v
        then [ (nameValuePair name (if isAttrs v then filterAttrsRecursive pred v else v)) ]
        else [ ])
      (attrNames set));

  mapAttrs' = f: set: listToAttrs (map (name: f name set.${name}) (attrNames set));
  mapAttrsToList = f: set: map (name: f name set.${name}) (attrNames set);
  concatMapAttrs = f: set: builtins.foldl' (acc: x: acc // x) { } (mapAttrsToList f set);

  mapAttrsRecursiveCond = cond: f: set:
    let
      go = path: value:
        if isAttrs value && cond value
        then builtins.mapAttrs (name: go (path ++ [ name ])) value
        else f path value;
    in
    go [ ] set;
  mapAttrsRecursive = mapAttrsRecursiveCond (_: true);

  genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);

  optionalAttrs = cond: set: if cond then set else { };

  isDerivation = value: value.type or null == "derivation";

  # Name/value pairs of all sets, combined per name by `f name values`.
  zipAttrsWithNames = names: f: sets:
    listToAttrs (map (name: nameValuePair name (f name (catAttrs name sets))) names);
  zipAttrs = builtins.zipAttrsWith (name: values: values);

  foldAttrs = op: nul: list_of_attrs:
    builtins.foldl'
      (acc: set: acc // builtins.mapAttrs (n: v: op v (acc.${n} or nul)) set)
      { }
      (lib.lists.reverseList list_of_attrs);

  collect = pred: v:
    if pred v then [ v ]
    else if isAttrs v then builtins.concatMap (collect pred) (builtins.attrValues v)
    else [ ];

  recursiveUpdateUntil = pred: lhs: rhs:
    let
      go = path: l: r:
        builtins.zipAttrsWith
          (n: values:
            let here = path ++ [ n ]; in
            if length values == 1
               || pred here (builtins.elemAt values 1) (head values)
            then head values
            else go here (builtins.elemAt values 1) (head values))
          [ r l ];
    in
    go [ ] lhs rhs;
  recursiveUpdate = recursiveUpdateUntil (path: lhs: rhs: !(isAttrs lhs && isAttrs rhs));

  mergeAttrsList = builtins.foldl' (a: b: a // b) { };

  getOutput = output: pkg: if pkg.outputSpecified or false then pkg else pkg.${output} or pkg;
  getBin = getOutput "bin";
  getLib = getOutput "lib";
  getDev = getOutput "dev";
}
