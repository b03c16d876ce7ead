# Platforms: just enough of `lib.systems` to name, compare and describe the
# systems a small fleet runs on.
{ lib }:
let
  # system double -> facts; `config` is the GNU triple the real lib would give.
  known = {
    x86_64-linux = { cpu = "x86_64"; bits = 64; family = "x86"; kernel = "linux"; config = "x86_64-unknown-linux-gnu"; };
    i686-linux = { cpu = "i686"; bits = 32; family = "x86"; kernel = "linux"; config = "i686-unknown-linux-gnu"; };
    aarch64-linux = { cpu = "aarch64"; bits = 64; family = "arm"; kernel = "linux"; config = "aarch64-unknown-linux-gnu"; };
    armv7l-linux = { cpu = "armv7l"; bits = 32; family = "arm"; kernel = "linux"; config = "armv7l-unknown-linux-gnueabihf"; };
    armv6l-linux = { cpu = "armv6l"; bits = 32; family = "arm"; kernel = "linux"; config = "armv6l-unknown-linux-gnueabihf"; };
    riscv64-linux = { cpu = "riscv64"; bits = 64; family = "riscv"; kernel = "linux"; config = "riscv64-unknown-linux-gnu"; };
    x86_64-darwin = { cpu = "x86_64"; bits = 64; family = "x86"; kernel = "darwin"; config = "x86_64-apple-darwin"; };
    aarch64-darwin = { cpu = "aarch64"; bits = 64; family = "arm"; kernel = "darwin"; config = "arm64-apple-darwin"; };
  };

  unknown = what: throw
    "lib.systems.elaborate: unknown system `${what}' (the nixlift stand-in nixpkgs knows: ${lib.concatStringsSep ", " (builtins.attrNames known)})";

  # "aarch64-unknown-linux-gnu" -> "aarch64-linux"
  doubleFromTriple = triple:
    let
      parts = lib.splitString "-" triple;
      cpu0 = builtins.head parts;
      cpu = if cpu0 == "arm64" then "aarch64" else cpu0;
      kernel =
        if lib.any (p: lib.hasPrefix "linux" p) parts then "linux"
        else if lib.any (p: lib.hasPrefix "darwin" p) parts then "darwin"
        else unknown triple;
    in
    "${cpu}-${kernel}";

  # Which CPUs run code built for which other ones (as the real lib answers).
  runs = {
    x86_64 = [ "x86_64" "i686" ];
    armv7l = [ "armv7l" "armv6l" ];
  };

  elaborate = systemOrArgs:
    let
      args = if builtins.isString systemOrArgs then { system = systemOrArgs; } else systemOrArgs;
      system =
        if args ? config then doubleFromTriple args.config
        else if args ? system then args.system
        else throw "lib.systems.elaborate: the platform needs a `system' or a `config' attribute";
      info = known.${system} or (unknown system);
      final = {
        inherit system;
        inherit (info) config;
        parsed = {
          cpu = { name = info.cpu; inherit (info) bits family; };
          kernel = { name = info.kernel; };
        };
        isLinux = info.kernel == "linux";
        isDarwin = info.kernel == "darwin";
        isx86_64 = info.cpu == "x86_64";
        isi686 = info.cpu == "i686";
        isx86_32 = info.cpu == "i686";
        isx86 = info.family == "x86";
        isAarch64 = info.cpu == "aarch64";
        isAarch32 = info.cpu == "armv7l" || info.cpu == "armv6l";
        isAarch = info.family == "arm";
        isRiscV = info.family == "riscv";
        isRiscV64 = info.cpu == "riscv64";
        is64bit = info.bits == 64;
        is32bit = info.bits == 32;
        linuxArch =
          if info.family == "x86" then (if info.bits == 64 then "x86_64" else "i386")
          else if info.cpu == "aarch64" then "arm64"
          else if info.family == "arm" then "arm"
          else "riscv";
        uname = {
          system = if info.kernel == "linux" then "Linux" else "Darwin";
          processor = info.cpu;
        };
        canExecute = platform:
          final.parsed.kernel.name == platform.parsed.kernel.name
          && builtins.elem platform.parsed.cpu.name (runs.${info.cpu} or [ info.cpu ]);
      };
    in
    if known ? ${system} then final // removeAttrs args [ "system" "parsed" ] else unknown system;

  examples = {
    gnu64 = { config = "x86_64-unknown-linux-gnu"; };
    gnu32 = { config = "i686-unknown-linux-gnu"; };
    aarch64-multiplatform = { config = "aarch64-unknown-linux-gnu"; };
    armv7l-hf-multiplatform = { config = "armv7l-unknown-linux-gnueabihf"; };
    raspberryPi = { config = "armv6l-unknown-linux-gnueabihf"; };
    riscv64 = { config = "riscv64-unknown-linux-gnu"; };
    x86_64-darwin = { config = "x86_64-apple-darwin"; };
    aarch64-darwin = { config = "arm64-apple-darwin"; };
  };
in
{
  inherit elaborate examples;
  doubles.all = builtins.attrNames known;
  flakeExposed = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "armv6l-linux" "armv7l-linux" "i686-linux" "aarch64-darwin" "riscv64-linux" ];
  # Compare platforms by what they are, not by their (function-containing) attrsets.
  equals = a: b: a.system == b.system && a.config == b.config;
}
