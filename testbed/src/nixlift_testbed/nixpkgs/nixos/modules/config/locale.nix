{ config, lib, ... }:
{
  options.time.timeZone = lib.mkOption {
    type = lib.types.nullOr lib.types.str;
    default = null;
    example = "Europe/Amsterdam";
    description = "The time zone of the machine; null leaves it to be set at run time.";
  };
  config.environment.etc.timezone = lib.mkIf (config.time.timeZone != null) {
    text = config.time.timeZone + "\n";
  };
}
