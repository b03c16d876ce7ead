# A stand-in of deploy-rs' flake (tests only): lib.<system>.activate.* make profiles shaped as
# deploy-rs' do. Its nixpkgs input is meant to follow the test flake's (the stand-in nixpkgs).
{
  description = "stand-in of deploy-rs' lib.activate for nixlift's tests";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      libFor = system:
        let pkgs = nixpkgs.legacyPackages.${system}; in
        {
          activate = rec {
            # base + deploy-rs-activate + activate-rs, as deploy-rs' `custom`
            custom = {
              __functor = customSelf: base: activate:
                pkgs.buildEnv {
                  name = "activatable-" + base.name;
                  paths = [
                    base
                    (pkgs.writeTextFile {
                      name = base.name + "-activate-path";
                      executable = true;
                      destination = "/deploy-rs-activate";
                      text = ''
                        #!${pkgs.runtimeShell}
                        set -eu
                        if [ "''${DRY_ACTIVATE:-}" = 1 ]; then
                          ${customSelf.dryActivate or "echo ${pkgs.writeScript "activate" activate}"}
                        elif [ "''${BOOT:-}" = 1 ]; then
                          ${customSelf.boot or "echo ${pkgs.writeScript "activate" activate}"}
                        else
                          ${activate}
                        fi
                      '';
                    })
                    (pkgs.writeTextFile {
                      name = base.name + "-activate-rs";
                      executable = true;
                      destination = "/activate-rs";
                      text = ''
                        #!${pkgs.runtimeShell}
                        echo "activate-rs is deploy-rs' own program, not part of this stand-in" >&2
                        exit 1
                      '';
                    })
                  ];
                };
            };

            nixos = base:
              (custom // {
                dryActivate = "$PROFILE/bin/switch-to-configuration dry-activate";
                boot = "$PROFILE/bin/switch-to-configuration boot";
              })
                base.config.system.build.toplevel
                "$PROFILE/bin/switch-to-configuration switch";

            noop = base: custom base ":";
          };
        };
    in
    {
      lib = builtins.listToAttrs (map (system: { name = system; value = libFor system; }) systems);
    };
}
