# Stand-ins of the few nixpkgs functions that package.nix, default.nix and flake.nix use, so
# that real Nix can evaluate those files here, where there is no nixpkgs. Nothing is built:
# buildPythonApplication returns the attribute set it was given (plus an outPath), and each
# package is a name with a fake store path. Only what the packaging test reads back.
{
  system ? "x86_64-linux",
}:
let
  fake = name: {
    inherit name;
    type = "derivation";
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  lib = {
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    makeBinPath = packages: builtins.concatStringsSep ":" (map (p: "${p}/bin") packages);
    optionalString = condition: text: if condition then text else "";
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = f name;
        }) names
      );
    licenses.mit = {
      spdxId = "MIT";
    };
    platforms.unix = [
      "x86_64-linux"
      "aarch64-linux"
    ];
    # the files a source would hold, as strings (a path in JSON would be copied to the store)
    fileset = {
      unions = files: map toString files;
      toSource = { root, fileset }: {
        root = toString root;
        files = fileset;
      };
    };
  };

  pkgs = {
    inherit lib;
    stdenv = {
      hostPlatform.system = system;
      buildPlatform.canExecute = platform: platform.system == system;
    };
    python3Packages = {
      buildPythonApplication =
        args:
        fake "${args.pname}-${args.version}"
        // {
          inherit args;
          meta = args.meta or { };
        };
      python = fake "python3" // {
        sitePackages = "lib/python3.12/site-packages";
      };
      setuptools = fake "python3-setuptools";
      rich = fake "python3-rich";
      shtab = fake "python3-shtab";
    };
    installShellFiles = fake "install-shell-files";
    nix = fake "nix";
    openssh = fake "openssh";
    callPackage =
      fn: overrides:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);
  };
in
pkgs
