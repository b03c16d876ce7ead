# Stand-in for nixpkgs' `lib`: a small subset with the same names and semantics.
# Each file gets the final `lib` (a fixed point), so files may use each other freely
# as long as the attribute *names* they return do not depend on `lib`.
let
  fix = f: let x = f x; in x;

  lib = fix (self:
    let
      call = file: import file { lib = self; };
      trivial = call ./trivial.nix;
      attrsets = call ./attrsets.nix;
      lists = call ./lists.nix;
      strings = call ./strings.nix;
      options = call ./options.nix;
      modules = call ./modules.nix;
      types = call ./types.nix;
      systems = call ./systems.nix;

      fixedPoints = {
        inherit fix;
        fix' = f: let x = f x // { __unfix__ = f; }; in x;
        extends = overlay: f: final: let prev = f final; in prev // overlay final prev;
        composeExtensions = f: g: final: prev:
          let fApplied = f final prev; in fApplied // g final (prev // fApplied);
        composeManyExtensions = builtins.foldl' fixedPoints.composeExtensions (final: prev: { });
      };
      asserts = {
        assertMsg = pred: msg: pred || builtins.throw msg;
        assertOneOf = name: val: xs:
          asserts.assertMsg (builtins.elem val xs)
            "${name} must be one of ${builtins.toJSON xs}, but is: ${builtins.toJSON val}";
      };
      meta = {
        getExe = pkg: meta.getExe' pkg (pkg.meta.mainProgram or (strings.getName pkg));
        getExe' = pkg: exe: "${attrsets.getBin pkg}/bin/${exe}";
      };

      # Names the real lib keeps only in its sub-sets; `lib.X` must not exist for them.
      notFlat = [
        "codeName" "release" "versionSuffix" "oldestSupportedRelease" "compareVersions"
        "parseDrvName" "unsafeDiscardStringContext" "escapeNixIdentifier" "escapeNixString"
        "isCoercibleToString" "findFirstIndex" "showDefs" "showValue" "collectModules"
        "unifyModule" "filterOverrides'" "defaultOrderPriority" "defaultOverridePriority"
        "defaultPriority"
      ];
    in
    removeAttrs (trivial // attrsets // lists // strings // options // modules) notFlat
    // fixedPoints // asserts // meta
    // {
      inherit trivial attrsets lists strings options modules types systems fixedPoints asserts meta;
      inherit (builtins) isBool isInt isFloat isPath isString isList isAttrs isFunction typeOf
        addErrorContext toString;
      inherit (types) isType setType mkOptionType isOptionType defaultTypeMerge defaultFunctor;
    });
in
lib
