# Only the options; the stand-in target runs its own sshd. Authorized keys are written to
# /etc/ssh/authorized_keys.d/<user> as NixOS does: they are files of the system's /etc
# ($toplevel/etc), and activation (switch, test, and at boot) puts them in place.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.openssh;
  withKeys = lib.filterAttrs
    (n: u: u.openssh.authorizedKeys.keys != [ ] || u.openssh.authorizedKeys.keyFiles != [ ])
    config.users.users;
in
{
  options.services.openssh = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether to enable the OpenSSH secure shell daemon. In the stand-in this means: the
        system manages /etc/ssh/authorized_keys.d (the only place a sandbox host's sshd reads
        authorized keys from). Its activation writes `<user>` there for every user with
        `users.users.<user>.openssh.authorizedKeys.keys` or `keyFiles` (atomically, mode 0444)
        and removes the files an earlier activation wrote for users that no longer have keys;
        files it never wrote (e.g. the key `nixlift-sandbox up` installs for root, as an
        installer would) are left alone until a system declares keys for that user. So a
        system that drops root's key locks out new SSH connections as root (open ones stay),
        and activating the previous system again lets them in. When false, activation leaves
        /etc/ssh/authorized_keys.d as it is.
      '';
    };
    ports = mkOption { type = types.listOf types.port; default = [ 22 ]; description = "Ports sshd listens on."; };
    openFirewall = mkOption { type = types.bool; default = true; description = "Whether to open the ports in the firewall."; };
    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      example = { PasswordAuthentication = false; };
      description = "sshd_config settings.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc = lib.mapAttrs'
      (name: user: lib.nameValuePair "ssh/authorized_keys.d/${name}" {
        text = lib.concatMapStrings (k: k + "\n") user.openssh.authorizedKeys.keys
          + lib.concatMapStrings (f: builtins.readFile f + "\n") user.openssh.authorizedKeys.keyFiles;
        mode = "0444";
      })
      withKeys;

    # Like NixOS' /etc/.clean, `.managed` lists what activation wrote, so that only those
    # files are removed when the system no longer declares them.
    standin.activation.activateSnippets = ''
      # services.openssh: /etc/ssh/authorized_keys.d as this system declares it
      keys_src="$systemConfig/etc/ssh/authorized_keys.d"
      keys_dir="$etc/ssh/authorized_keys.d"
      mkdir -p "$keys_dir"
      managed=
      for f in "$keys_src"/*; do
        [ -f "$f" ] || continue
        user=''${f##*/}
        tmp="$keys_dir/.$user.tmp.$$"
        cp "$f" "$tmp"
        chmod 0444 "$tmp"
        mv -f "$tmp" "$keys_dir/$user"
        managed="$managed$user
      "
      done
      if [ -f "$keys_dir/.managed" ]; then
        while IFS= read -r user; do
          case "$user" in ""|.*|*/*) continue ;; esac
          [ -e "$keys_src/$user" ] || rm -f "$keys_dir/$user"
        done < "$keys_dir/.managed"
      fi
      printf '%s' "$managed" > "$keys_dir/.managed.tmp.$$"
      mv -f "$keys_dir/.managed.tmp.$$" "$keys_dir/.managed"
    '';
  };
}
