# nixlift as a nixpkgs package, in nixpkgs' own style (pkgs/by-name/ni/nixlift/package.nix would
# hold the same with a fetched src). default.nix and flake.nix call it with callPackage.
#
# Not built against a real nixpkgs in this repository: its tests run where there is none. A
# unit test (tests/unit/test_nix_packaging.py) evaluates this file, default.nix and flake.nix
# with real Nix against small stand-ins of the nixpkgs functions used here, and checks what they
# ask for (the wrapper's PATH, the man page, the completions, the version).
{
  lib,
  stdenv,
  python3Packages,
  installShellFiles,
  nix,
  openssh,
}:

let
  # one version, pyproject.toml's
  project = (lib.importTOML ./pyproject.toml).project;
in
python3Packages.buildPythonApplication {
  pname = "nixlift";
  inherit (project) version;
  pyproject = true;

  # the product only: a checkout's .venv, tests and test bed have no business in the store
  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./pyproject.toml
      ./README.md
      ./LICENSE
      ./MANIFEST.in
      ./src
      ./man
    ];
  };

  build-system = [ python3Packages.setuptools ];
  dependencies = [
    python3Packages.rich
    python3Packages.shtab
  ];
  nativeBuildInputs = [ installShellFiles ];

  # nixlift runs nix and OpenSSH's ssh: the ones it was built with come first, so that a deploy
  # does not depend on what the calling shell happens to have on its PATH
  makeWrapperArgs = [
    "--prefix"
    "PATH"
    ":"
    (lib.makeBinPath [
      nix
      openssh
    ])
  ];

  postInstall =
    ''
      installManPage man/nixlift.1
    ''
    # the scripts come from the program itself, which must run on the build machine for that;
    # it is not wrapped yet here, so its own site-packages goes on the path by hand
    + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
      export PYTHONPATH="$out/${python3Packages.python.sitePackages}:$PYTHONPATH"
      installShellCompletion --cmd nixlift \
        --bash <($out/bin/nixlift completions bash) \
        --zsh <($out/bin/nixlift completions zsh) \
        --fish <($out/bin/nixlift completions fish)
    '';

  pythonImportsCheck = [ "nixlift" ];

  meta = {
    description = project.description;
    license = lib.licenses.mit;
    mainProgram = "nixlift";
    platforms = lib.platforms.unix;
  };
}
