{ lib }:
let
  inherit (builtins) head tail length elemAt genList filter foldl' sort;
in
rec {
  inherit (builtins) head tail length elemAt elem genList filter map concatLists concatMap
    foldl' sort isList any all partition groupBy;

  singleton = x: [ x ];
  forEach = xs: f: map f xs;

  foldr = op: nul: list:
    let
      len = length list;
      go = n: if n == len then nul else op (elemAt list n) (go (n + 1));
    in
    go 0;
  fold = foldr;
  foldl = op: nul: list: foldl' op nul list;

  imap0 = f: list: genList (n: f n (elemAt list n)) (length list);
  imap1 = f: list: genList (n: f (n + 1) (elemAt list n)) (length list);
  ifilter0 = pred: list:
    map (i: elemAt list i) (filter (i: pred i (elemAt list i)) (range 0 (length list - 1)));

  flatten = x: if builtins.isList x then builtins.concatMap flatten x else [ x ];
  remove = e: filter (x: x != e);

  findFirst = pred: default: list:
    let found = filter pred list; in if found == [ ] then default else head found;
  findFirstIndex = pred: default: list:
    let idx = filter (i: pred (elemAt list i)) (range 0 (length list - 1)); in
    if idx == [ ] then default else head idx;
  findSingle = pred: default: multiple: list:
    let found = filter pred list; n = length found; in
    if n == 0 then default else if n == 1 then head found else multiple;

  count = pred: foldl' (c: x: if pred x then c + 1 else c) 0;

  optional = cond: elem: if cond then [ elem ] else [ ];
  optionals = cond: elems: if cond then elems else [ ];
  toList = x: if builtins.isList x then x else [ x ];

  range = first: last: if first > last then [ ] else genList (n: first + n) (last - first + 1);
  replicate = n: x: genList (_: x) n;

  groupBy' = op: nul: pred: list:
    builtins.mapAttrs (name: foldl' op nul) (builtins.groupBy pred list);

  zipListsWith = f: fst: snd:
    genList (n: f (elemAt fst n) (elemAt snd n)) (lib.trivial.min (length fst) (length snd));
  zipLists = zipListsWith (fst: snd: { inherit fst snd; });

  reverseList = xs: let l = length xs; in genList (n: elemAt xs (l - n - 1)) l;

  compareLists = cmp: a: b:
    if a == [ ] then (if b == [ ] then 0 else -1)
    else if b == [ ] then 1
    else let c = cmp (head a) (head b); in if c == 0 then compareLists cmp (tail a) (tail b) else c;

  take = count: sublist 0 count;
  drop = count: list: sublist count (length list) list;
  sublist = start: count: list:
    let
      len = length list;
      n = if start >= len then 0 else if start + count > len then len - start else count;
    in
    genList (i: elemAt list (start + i)) n;
  last = list: assert lib.asserts.assertMsg (list != [ ]) "lists.last: list must not be empty!";
    elemAt list (length list - 1);
  init = list: assert lib.asserts.assertMsg (list != [ ]) "lists.init: list must not be empty!";
    take (length list - 1) list;

  unique = foldl' (acc: e: if builtins.elem e acc then acc else acc ++ [ e ]) [ ];
  allUnique = list: length (unique list) == length list;
  intersectLists = e: filter (x: builtins.elem x e);
  subtractLists = e: filter (x: !(builtins.elem x e));
  mutuallyExclusive = a: b: a == [ ] || (!(builtins.elem (head a) b) && mutuallyExclusive (tail a) b);
}
