# A network of the local sandbox hosts, written by `nixlift-sandbox up`. Deploy it with
#   nixlift deploy THIS-FILE
# The hosts' names, ssh config and the stand-in nixpkgs come from sandbox.json beside this file,
# so this file stays plain NixOps format: machines as NixOS modules, `defaults` for all of them.
let
  sandbox = builtins.fromJSON (builtins.readFile ./sandbox.json);
  machine = name: { config, pkgs, lib, ... }: {
    environment.etc."motd".text = "Welcome to ${config.networking.hostName}, deployed by nixlift.";
    environment.systemPackages = [ pkgs.hello ];
  };
in
{
  network.description = "nixlift sandbox";
  network.nixpkgs = sandbox.nixpkgs;
  # The stand-in systems exist in no binary cache: don't ask one (morph's network.nixConfig,
  # passed to the builds as --option).
  network.nixConfig.substituters = "";

  defaults = { lib, ... }: {
    # `ssh -F …/ssh_config h1` reaches sandbox host h1, its host key checked against the
    # known_hosts file the sandbox wrote.
    deployment.sshOptions = [ "-F" sandbox.sshConfig ];
    # As on NixOS, the system says who may log in: the hosts' sshd reads keys only from
    # /etc/ssh/authorized_keys.d, which activation writes. Keep the sandbox's key there, for
    # root and for the hosts' users who are not root (deploy, admin).
    services.openssh.enable = true;
    users.users = lib.genAttrs (sandbox.users or [ "root" ]) (user: {
      openssh.authorizedKeys.keys = lib.optional (sandbox ? publicKey) sandbox.publicKey;
    });
    system.stateVersion = "24.05";
  };
}
// builtins.listToAttrs (map (name: { inherit name; value = machine name; }) sandbox.hosts)
