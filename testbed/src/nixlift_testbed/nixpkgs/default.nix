# Stand-in for `import <nixpkgs> { ... }`: the same arguments, a tiny package set.
# Every derivation is a raw `derivation` built by /bin/sh on the building machine,
# or by a static busybox (run through binfmt emulation) for any other system.
{ system ? builtins.currentSystem
, localSystem ? { inherit system; }
, crossSystem ? null
, config ? { }
, overlays ? [ ]
, crossOverlays ? [ ]
, ...
}@args:
let
  lib = import ./lib;

  buildPlatform = lib.systems.elaborate localSystem;
  hostPlatform =
    if crossSystem == null then buildPlatform
    else let h = lib.systems.elaborate crossSystem; in
      if lib.systems.equals h buildPlatform then buildPlatform else h;

  busyboxDir =
    let d = builtins.getEnv "NIXLIFT_STANDIN_BUSYBOX_DIR"; in
    if d != "" then d else "/usr/libexec/nixlift-standin";

  base = final: {
    inherit lib;
    path = ./.;
    config = if lib.isFunction config then config { pkgs = final; } else config;
    system = hostPlatform.system;
    inherit hostPlatform buildPlatform;
    targetPlatform = hostPlatform;
    stdenv = {
      inherit hostPlatform buildPlatform;
      targetPlatform = hostPlatform;
      isLinux = hostPlatform.isLinux;
      isDarwin = hostPlatform.isDarwin;
    };

    pkgs = final;
    appendOverlays = extra: import ./. (args // { overlays = overlays ++ extra; });
    extend = overlay: final.appendOverlays [ overlay ];
    callPackage = fn: extra:
      let f = if lib.isFunction fn then fn else import fn; in
      f (builtins.intersectAttrs (lib.functionArgs f) final // extra);

    standin = {
      inherit busyboxDir;

      # The one place derivations are made. Scripts run with `set -e`; they call
      # tools as `$bb tool`, where $bb is empty natively and the busybox binary
      # otherwise (so applets work even if busybox sh would look them up in PATH).
      mkRawDerivation =
        { name
        , script
        , system ? buildPlatform.system
        , nativeBuildInputs ? [ ]
        , buildInputs ? [ ]
        , meta ? { }
        , passthru ? { }
        , ...
        }@drvArgs:
        let
          # (pure evaluation, as in a flake evaluated by `nix build`, has no currentSystem: the
          # package set's own build platform is taken for this machine's)
          native = system == (builtins.currentSystem or buildPlatform.system);
          busybox = "${busyboxDir}/${system}/busybox";
          drv = derivation (removeAttrs drvArgs [ "script" "nativeBuildInputs" "buildInputs" "meta" "passthru" ] // {
            inherit name system;
            builder = if native then "/bin/sh" else busybox;
            # busybox picks its applet from argv[1] here, not from the file name.
            args = lib.optional (!native) "sh" ++ [ "-c" ("set -e\n" + script) ];
            bb = if native then "" else busybox;
            PATH = lib.concatStringsSep ":"
              (map (p: "${p}/bin") (nativeBuildInputs ++ buildInputs) ++ [ "/usr/bin" "/bin" ]);
          });
        in
        drv // passthru // { inherit meta passthru; };
    };

    runCommand = name: env: script: final.standin.mkRawDerivation (env // { inherit name script; });
    runCommandLocal = name: env: final.runCommand name ({ preferLocalBuild = true; allowSubstitutes = false; } // env);

    writeTextFile =
      { name, text, executable ? false, destination ? "", checkPhase ? "", meta ? { }
      , allowSubstitutes ? false, preferLocalBuild ? true, derivationArgs ? { }
      }:
      final.runCommand name
        ({
          inherit text executable destination allowSubstitutes preferLocalBuild meta;
          passAsFile = [ "text" ];
        } // derivationArgs)
        ''
          target="$out$destination"
          if [ -n "$destination" ]; then $bb mkdir -p "''${target%/*}"; fi
          $bb cat "$textPath" > "$target"
          if [ -n "$executable" ]; then $bb chmod +x "$target"; fi
          ${checkPhase}
        '';
    writeText = name: text: final.writeTextFile { inherit name text; };
    writeTextDir = path: text: final.writeTextFile {
      inherit text;
      name = builtins.baseNameOf path;
      destination = "/${path}";
    };
    writeScript = name: text: final.writeTextFile { inherit name text; executable = true; };
    writeScriptBin = name: text: final.writeTextFile {
      inherit name text;
      executable = true;
      destination = "/bin/${name}";
      meta.mainProgram = name;
    };
    # The machines this deploys to have a POSIX /bin/sh; that is the runtime shell.
    runtimeShell = "/bin/sh";
    writeShellScript = name: text: final.writeScript name "#!${final.runtimeShell}\n${text}";
    writeShellScriptBin = name: text: final.writeScriptBin name "#!${final.runtimeShell}\n${text}";

    # Symlink forest of `pathsToLink` of every path; directories are merged.
    buildEnv =
      { name, paths, pathsToLink ? [ "/" ], postBuild ? "", meta ? { }, passthru ? { }
      , ignoreCollisions ? false, extraOutputsToInstall ? [ ]
      }:
      final.runCommand name
        { inherit meta passthru; passAsFile = [ "pathList" ]; pathList = lib.concatMapStrings (p: "${p}\n") paths; }
        ''
          link() {
            $bb mkdir -p "$2"
            for f in "$1"/* "$1"/.[!.]*; do
              [ -e "$f" ] || [ -L "$f" ] || continue
              t="$2/''${f##*/}"
              if [ -d "$f" ] && [ ! -L "$f" ]; then link "$f" "$t"
              elif [ ! -e "$t" ] && [ ! -L "$t" ]; then $bb ln -s "$f" "$t"
              fi
            done
          }
          $bb mkdir -p "$out"
          while read -r p; do
            for sub in ${lib.escapeShellArgs pathsToLink}; do
              if [ -d "$p$sub" ]; then link "$p$sub" "$out$sub"; fi
            done
          done < "$pathListPath"
          ${postBuild}
        '';
    symlinkJoin = { name, paths, postBuild ? "", meta ? { }, passthru ? { } }:
      final.buildEnv { inherit name paths postBuild meta passthru; };

    hello = final.runCommand "hello-2.12.1"
      { pname = "hello"; version = "2.12.1"; meta.mainProgram = "hello"; }
      ''
        $bb mkdir -p "$out/bin"
        printf '#!/bin/sh\necho "Hello, world!"\n' > "$out/bin/hello"
        $bb chmod +x "$out/bin/hello"
      '';

    # Small packages with versions, so that a system's package changes can be seen (nixlift
    # plan, nix store diff-closures): each a program printing its version, and `size` bytes of
    # data beside it (nix shows size changes from 8 KiB on).
    standinPackage = { pname, version, size ? 1024 }:
      final.runCommand "${pname}-${version}"
        { inherit pname version; meta.mainProgram = pname; }
        ''
          $bb mkdir -p "$out/bin" "$out/share/${pname}"
          printf '#!/bin/sh\necho "${pname} ${version}"\n' > "$out/bin/${pname}"
          $bb chmod +x "$out/bin/${pname}"
          $bb head -c ${toString size} /dev/zero > "$out/share/${pname}/data"
        '';
    jq = final.standinPackage { pname = "jq"; version = "1.7.1"; size = 20000; };
    tree = final.standinPackage { pname = "tree"; version = "2.1.1"; };
    curl = final.standinPackage { pname = "curl"; version = "8.6.0"; size = 40000; };
  };
in
lib.fix (lib.foldl' (f: overlay: lib.extends overlay f) base (overlays ++ crossOverlays))
