# The `deployment.*` options every machine of a network gets: the union of the names NixOps,
# morph and colmena use, so existing network files evaluate unchanged. Declared with real types
# so a typo or a wrong value is an error at evaluation, before anything is built.
#
# Also a plain NixOS module: `imports = [ …/nixlift/nix/deployment.nix ];` in a configuration
# of a flake's nixosConfigurations (or the flake output nixosModules.default of nixlift's own
# flake.nix) gives it these options, which nixlift then reads.
{ config, lib, ... }@args:
let
  inherit (lib) mkOption types;
  cfg = config.deployment;
  # nixlift, colmena and morph pass the machine's name as a module argument (NixOps in
  # _module.args); a plain NixOS configuration has none, and its host name stands in
  name = args.name or config._module.args.name or config.networking.hostName;

  # Paths to secrets are kept as strings: a path value would be copied into the Nix store the
  # moment it is turned into JSON, and secrets never belong in the store.
  pathString = types.nullOr (types.either types.path types.str);
  asString = v: if v == null then null else toString v;

  uploadAt = mkOption {
    type = types.enum [ "pre-activation" "post-activation" ];
    default = "pre-activation";
    description = "Upload before or after the new configuration is activated.";
  };

  keyModule = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; description = "File name of the key."; };
      text = mkOption { type = types.nullOr types.str; default = null; description = "The key's content (never stored in the Nix store)."; };
      keyFile = mkOption { type = pathString; default = null; apply = asString; description = "A file on the deploying machine holding the key."; };
      keyCommand = mkOption { type = types.nullOr (types.listOf types.str); default = null; description = "A command whose output is the key."; };
      destDir = mkOption { type = types.str; default = "/run/keys"; description = "Directory on the host."; };
      user = mkOption { type = types.str; default = "root"; description = "Owner of the key file."; };
      group = mkOption { type = types.str; default = "root"; description = "Group of the key file."; };
      permissions = mkOption { type = types.str; default = "0600"; description = "Mode of the key file."; };
      inherit uploadAt;
    };
  };

  secretModule = { name, ... }: {
    options = {
      source = mkOption { type = types.either types.path types.str; apply = toString; description = "A file on the deploying machine."; };
      destination = mkOption { type = types.str; description = "Absolute path on the host."; };
      owner.user = mkOption { type = types.str; default = "root"; description = "Owner on the host."; };
      owner.group = mkOption { type = types.str; default = "root"; description = "Group on the host."; };
      permissions = mkOption { type = types.str; default = "0400"; description = "Mode on the host."; };
      action = mkOption { type = types.listOf types.str; default = [ ]; description = "Command run on the host after an upload changed the secret."; };
      mkDirs = mkOption { type = types.bool; default = true; description = "Create missing parent directories."; };
      inherit uploadAt;
    };
  };

  cmdCheck = types.submodule {
    options = {
      description = mkOption { type = types.str; default = ""; description = "What the check shows."; };
      cmd = mkOption { type = types.listOf types.str; description = "Command run on the host; exit 0 = healthy."; };
      period = mkOption { type = types.ints.positive; default = 2; description = "Seconds between attempts."; };
      timeout = mkOption { type = types.ints.positive; default = 10; description = "Seconds after which the check has failed."; };
    };
  };

  httpCheck = types.submodule {
    options = {
      description = mkOption { type = types.str; default = ""; description = "What the check shows."; };
      host = mkOption { type = types.nullOr types.str; default = null; description = "Host name to query; null = the target host."; };
      scheme = mkOption { type = types.enum [ "http" "https" ]; default = "http"; description = "URL scheme."; };
      port = mkOption { type = types.port; default = 80; description = "TCP port."; };
      path = mkOption { type = types.str; default = "/"; description = "URL path."; };
      headers = mkOption { type = types.attrsOf types.str; default = { }; description = "Request headers."; };
      period = mkOption { type = types.ints.positive; default = 2; description = "Seconds between attempts."; };
      timeout = mkOption { type = types.ints.positive; default = 10; description = "Seconds after which the check has failed."; };
      insecureSSL = mkOption { type = types.bool; default = false; description = "Accept any TLS certificate."; };
    };
  };

  checks = description: mkOption {
    inherit description;
    default = { };
    type = types.submodule {
      options = {
        cmd = mkOption { type = types.listOf cmdCheck; default = [ ]; description = "Command checks."; };
        http = mkOption { type = types.listOf httpCheck; default = [ ]; description = "HTTP checks."; };
      };
    };
  };
in
{
  options.deployment = {
    targetEnv = mkOption {
      type = types.str;
      default = "none";
      description = "NixOps' backend; only `none` (an existing machine reached over SSH) is supported.";
    };
    targetHost = mkOption {
      type = types.nullOr types.str;
      default = name;
      description = ''
        Address or SSH host alias of the machine; defaults to the machine's name. null: the
        machine is only deployed on itself (`nixlift apply-local`, colmena).
      '';
    };
    targetPort = mkOption {
      type = types.nullOr types.port;
      default = null;
      description = "SSH port; null leaves it to the SSH configuration (22 by default).";
    };
    targetUser = mkOption {
      type = types.nullOr types.str;
      default = "root";
      description = "SSH user; null leaves it to the SSH configuration.";
    };
    sshOptions = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra arguments for ssh, e.g. [ \"-F\" \"./ssh_config\" ].";
    };
    privilegeEscalationCommand = mkOption {
      type = types.listOf types.str;
      default = [ "sudo" "-H" "--" ];
      description = "Prefix for commands that need root when targetUser is not root.";
    };
    tags = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Tags for selecting machines with `--on @tag`.";
    };
    keys = mkOption {
      type = types.attrsOf (types.submodule keyModule);
      default = { };
      description = "Secrets uploaded to the host outside the Nix store (NixOps, colmena).";
    };
    secrets = mkOption {
      type = types.attrsOf (types.submodule secretModule);
      default = { };
      description = "Secrets uploaded to the host outside the Nix store (morph).";
    };
    healthChecks = checks "Checks that must pass after activation (morph).";
    preDeployChecks = checks "Checks that must pass before activation (morph).";
    buildHost = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "builder@big-box";
      description = ''
        Build the system on this machine (`[user@]host`, reached with NIX_SSHOPTS and this
        machine's sshOptions) instead of here, and copy it from there to the target
        (nixos-rebuild's --build-host).
      '';
    };
    buildOnTarget = mkOption {
      type = types.bool;
      default = false;
      description = "Build the system on the host itself instead of locally (colmena).";
    };
    allowLocalDeployment = mkOption {
      type = types.bool;
      default = false;
      description = "Allow `nixlift apply-local` to deploy this machine onto the machine nixlift runs on (colmena).";
    };
    replaceUnknownProfiles = mkOption {
      type = types.bool;
      default = true;
      description = "Replace a system profile that nixlift did not create (colmena).";
    };
    compress = mkOption {
      type = types.bool;
      default = false;
      description = "Compress what goes over SSH (ssh -C): for slow links; it costs CPU on fast ones.";
    };
    hasFastConnection = mkOption {
      type = types.bool;
      default = false;
      description = "Copy everything from here instead of letting the host use its binary caches (NixOps).";
    };
    substituteOnDestination = mkOption {
      type = types.nullOr types.bool;
      default = null;
      description = "Let the host fetch paths from its binary caches (morph); null follows hasFastConnection.";
    };
    autoRollback = mkOption {
      type = types.bool;
      default = true;
      description = "When switch-to-configuration fails, go back to the previous system (deploy-rs).";
    };
    magicRollback = mkOption {
      type = types.bool;
      default = true;
      description = ''
        After `switch`/`test`, the host rolls itself back unless nixlift confirms, over a new
        SSH connection and with the health checks passing, within confirmTimeout (deploy-rs).
      '';
    };
    confirmTimeout = mkOption {
      type = types.ints.positive;
      default = 30;
      description = "Seconds the host waits for the confirmation before rolling back.";
    };
    activationTimeout = mkOption {
      type = types.ints.positive;
      default = 240;
      description = "Seconds switch-to-configuration may take before nixlift reports a failure.";
    };
    alwaysActivate = mkOption {
      type = types.bool;
      default = true;
      description = "Activate even when the host already runs the built system (NixOps).";
    };
  };

  # The host's side of deployment.keys, as NixOps and colmena give it (never touching a key's
  # text, keyFile or keyCommand): the `keys` group owns /run/keys; `<name>-key.service` starts
  # once the key's file exists and stops when it is deleted, so a service can `wants`/`after`
  # (or `bindsTo`) it; `<name>-key.path` watches for the file; and the activation gives keys
  # uploaded before activation their owner once the users and groups exist.
  config = lib.mkIf (cfg.keys != { }) {
    assertions = lib.mapAttrsToList (key: k: {
      assertion = builtins.length (builtins.filter (v: v != null) [ k.text k.keyFile k.keyCommand ]) == 1;
      message = "${name}: exactly one of deployment.keys.${key}.text, .keyFile and .keyCommand must be set.";
    }) cfg.keys;

    users.groups.keys = { };

    systemd.paths = lib.mapAttrs' (key: k: lib.nameValuePair "${key}-key" {
      description = "nixlift: watch for the key ${k.name}";
      wantedBy = [ "paths.target" ];
      pathConfig.PathExists = "${k.destDir}/${k.name}";
    }) cfg.keys;

    systemd.services = lib.mapAttrs' (key: k: let path = "${k.destDir}/${k.name}"; in lib.nameValuePair "${key}-key" {
      description = "nixlift: the key ${k.name} is in place";
      serviceConfig = {
        TimeoutStartSec = "infinity";
        Restart = "always";
        RestartSec = "100ms";
      };
      # starting waits for the file; running lasts as long as it exists
      preStart = "while [ ! -e ${lib.escapeShellArg path} ]; do sleep 0.1; done";
      script = "while [ -e ${lib.escapeShellArg path} ]; do sleep 1; done";
    }) cfg.keys;

    system.activationScripts.nixlift-keys = {
      deps = if config.system.activationScripts ? groups then [ "groups" ] else [ "users" ];
      text = ''
        mkdir -p -m 0750 /run/keys
        chown root:keys /run/keys 2>/dev/null || true
      '' + lib.concatStrings (lib.mapAttrsToList (key: k: let path = lib.escapeShellArg "${k.destDir}/${k.name}"; in ''
        if [ -e ${path} ]; then
          chown ${lib.escapeShellArg "${k.user}:${k.group}"} ${path} || echo "nixlift: cannot give ${k.name} to ${k.user}:${k.group}" >&2
          chmod ${lib.escapeShellArg k.permissions} ${path}
        fi
      '') (lib.filterAttrs (_: k: k.uploadAt == "pre-activation") cfg.keys));
    };
  };
}
