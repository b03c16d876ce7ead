{ config, lib, pkgs, ... }:
{
  options.environment.systemPackages = lib.mkOption {
    type = lib.types.listOf lib.types.package;
    default = [ ];
    example = lib.literalExpression "[ pkgs.hello ]";
    description = "Packages installed system-wide (their `bin/` is linked under `sw/bin`).";
  };

  config.system.build.path = pkgs.buildEnv {
    name = "system-path";
    paths = config.environment.systemPackages;
    pathsToLink = [ "/bin" ];
  };
}
