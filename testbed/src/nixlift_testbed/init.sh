# Init and tools of the nixlift sandbox hosts. One file, five programs, chosen by the name it is
# run as (nixlift_testbed.hosts copies it to DIR/init.sh and to DIR/bin/standin-init,
# DIR/bin/reboot, DIR/bin/standin-bootctl and DIR/bin/bootctl; inside a host DIR/bin is merged
# into /usr/local/sbin, so the last four are on the host's PATH):
#
#   init.sh HOST_DIR HOST_NAME SSHD
#       nixlift starts it as
#         unshare --mount --uts --pid --fork --kill-child --mount-proc --propagation private \
#           sh DIR/init.sh HOST_DIR HOST_NAME SSHD
#       so it runs as PID 1 of its own mount, pid and uts namespaces. It gives the host its own
#       /nix, /etc (an overlay on the real /etc), /root, /home and /var/lib/standin, puts DIR/bin
#       on the PATH, then becomes `standin-init` (whose command line names no sandbox path).
#         HOST_DIR   the host's directory: nix/ etc-upper/ etc-work/ root/ home/ state/ (the test
#                    bed has put the host's ssh/sshd_config, its host key, hostname and users,
#                    deploy and admin, into etc-upper/ already, and their homes into home/)
#         HOST_NAME  the host name (h1, h2, ...)
#         SSHD       absolute path of sshd
#
#   standin-init HOST_NAME SSHD
#       The host's PID 1, boot after boot. Each boot: a fresh tmpfs on /run, a new boot id
#       (a file bound over /proc/sys/kernel/random/boot_id, which is the kernel's otherwise),
#       the stand-in bootloader's entry activated, the host's nix-daemon (root; its socket is
#       /nix/var/nix/daemon-socket/socket of the host's /nix, so users other than root use the
#       host's store through it, as on NixOS), then sshd. Signals (from inside the host or
#       from nixlift outside it):
#         SIGHUP         reboot: every other process of the host is killed, the next boot begins
#         SIGTERM/INT    power off: every process is killed and the host's namespaces end
#       If sshd exits by itself, the host powers off as well (nixlift reports its log).
#
#   reboot             (inside a host) reboot it: every session ends at once; it is back, with
#                      the same address, /nix, /etc and state, within a second or so.
#
#   standin-bootctl status | set-default PATH | set-oneshot PATH | clear-oneshot
#       (inside a host) the stand-in bootloader. Its entries are system store paths in the
#       state directory: `boot-default` (written by `switch-to-configuration switch|boot` too)
#       and `boot-once`, an entry for the next boot only (removed when that boot reads it, as
#       systemd-boot's LoaderEntryOneShot or GRUB's grub-reboot). `status` prints JSON:
#       {"default", "oneshot", "booted", "current", "bootId"} (null when absent).
#
#   bootctl is-installed | set-default ENTRY | set-oneshot ENTRY
#       (inside a host) systemd-boot's bootctl as on NixOS, for what nixlift uses, so that a
#       deployer finds the same command as on a real machine. ENTRY is NixOS' name of a boot
#       entry, `nixos-generation-N.conf`: the system of the profile generation
#       /nix/var/nix/profiles/system-N-link (followed inside the host). It writes the same
#       records as `standin-bootctl set-default|set-oneshot PATH` and, as systemd's bootctl,
#       prints nothing when it succeeds; `is-installed` prints "yes". A generation that does not
#       exist is an error (exit status 1), as is any other verb.
#
# The boot: the one-shot entry if there is one (and it is a directory), else the default entry.
# The chosen system's `activate` runs (it points /run/current-system at the system and writes
# what its /etc manages, e.g. /etc/ssh/authorized_keys.d); a system without `activate` only
# gets the link. /run/booted-system names the booted system. Without any entry (a fresh host)
# neither link exists. Each boot appends {"bootId", "system", "entry"} to
# /var/lib/standin/boots.jsonl, and a line to the host's log.
#
# Paths in init.sh are relative to HOST_DIR: the shell's working directory keeps pointing at it
# even after /root (or /etc) is covered, so HOST_DIR may live anywhere, e.g. under /root.
# Few commands on purpose: each one is a process start, and 250 hosts may start at once.

state=/var/lib/standin

setup() {
    set -eu
    host_dir=$1
    host_name=$2
    sshd=$3

    cd "$host_dir"

    mount --bind nix /nix
    mount -t overlay overlay -o lowerdir=/etc,upperdir=etc-upper,workdir=etc-work /etc
    mount --bind state /var/lib/standin
    mount --bind root /root
    mount --bind home /home
    # The sandbox's tools (DIR/bin, relative: overlay options cannot take every path) go on
    # the PATH, merged over the real directory so that what is there stays.
    for sbin in /usr/local/sbin /usr/sbin /usr/bin; do
        [ -d "$sbin" ] && break
    done
    mount -t overlay overlay -o "lowerdir=../../bin:$sbin" "$sbin"
    printf '%s\n' "$host_name" >/proc/sys/kernel/hostname

    # The init keeps HOST_DIR as its working directory (and so does sshd): /proc/PID/cwd
    # names the sandbox. Its environment is a clean one (nothing of nixlift's, e.g. $PWD).
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/sh "$sbin/standin-init" "$host_name" "$sshd"
}

log() {
    printf 'standin-init: %s\n' "$*" >&2
}

# The stand-in bootloader: sets $entry (a system path or empty) and $how.
choose_entry() {
    entry=
    how=
    if [ -f "$state/boot-once" ]; then
        read -r entry <"$state/boot-once" || :
        rm -f "$state/boot-once"
        how=oneshot
        case "$entry" in
            /*) [ -d "$entry" ] || { log "one-shot boot entry $entry is not a system"; entry=; } ;;
            *) log "one-shot boot entry '$entry' is not a path"; entry= ;;
        esac
    fi
    if [ -z "$entry" ] && [ -f "$state/boot-default" ]; then
        read -r entry <"$state/boot-default" || :
        how=default
        case "$entry" in
            /*) [ -d "$entry" ] || { log "boot entry $entry is not a system"; entry=; } ;;
            *) log "boot entry '$entry' is not a path"; entry= ;;
        esac
    fi
    [ -n "$entry" ] || how=
}

boot() {
    boots=$((boots + 1))
    if [ "$boots" -gt 1 ]; then
        umount /proc/sys/kernel/random/boot_id 2>/dev/null || :
        umount -l /run || log "cannot unmount /run"
    fi
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || return 1
    mkdir -m 0755 /run/sshd /run/standin || return 1
    read -r boot_id </proc/sys/kernel/random/uuid
    printf '%s\n' "$boot_id" >/run/standin/boot_id
    mount --bind -o ro /run/standin/boot_id /proc/sys/kernel/random/boot_id || return 1
    start_nix_daemon  # (it gets ready while the boot entry is activated)

    choose_entry
    if [ -n "$entry" ]; then
        ln -s "$entry" /run/booted-system
        if [ -x "$entry/activate" ]; then
            NIXLIFT_STANDIN_RUN=/run NIXLIFT_STANDIN_ETC=/etc NIXLIFT_STANDIN_STATE=$state \
                "$entry/activate" </dev/null || log "activation of $entry failed (exit status $?)"
        else
            ln -s "$entry" /run/current-system
        fi
        printf '{"bootId": "%s", "system": "%s", "entry": "%s"}\n' "$boot_id" "$entry" "$how" \
            >>"$state/boots.jsonl"
    else
        printf '{"bootId": "%s", "system": null, "entry": null}\n' "$boot_id" \
            >>"$state/boots.jsonl"
    fi
    log "boot $boots ($boot_id): ${entry:-no boot entry}${how:+ ($how)}"

    wait_nix_daemon
    # Started in the background (the shell must wait for signals), so the shell would have it
    # ignore SIGINT and SIGQUIT: env gives them back their default (sessions inherit them).
    env --default-signal=INT,QUIT "$sshd" -D -e -f /etc/ssh/sshd_config &
    sshd_pid=$!
}

# The host's nix-daemon, for users other than root (root uses the store directly). It is no job
# of this shell (started from a subshell, it is an orphan this init reaps): `wait` keeps waiting
# for sshd alone, and the reboot's `kill -1` ends it with the rest. It runs in / without
# $OLDPWD (its working directory and environment would name the sandbox otherwise).
daemon_socket=/nix/var/nix/daemon-socket/socket
start_nix_daemon() {
    daemon=
    command -v nix-daemon >/dev/null || { log "no nix-daemon: only root can use /nix"; return 0; }
    daemon=started
    # the socket of the boot before goes first, so that wait_nix_daemon sees the new one
    [ ! -e "$daemon_socket" ] || rm -f "$daemon_socket"
    (cd / && unset OLDPWD && nix-daemon </dev/null &)
}

# sshd starts once the daemon listens, so that the first session finds it. (Each `sleep` is a
# process start: steps of 20 ms, a few per boot, when hundreds of hosts start at once.)
wait_nix_daemon() {
    [ -n "$daemon" ] || return 0
    tries=0
    while [ ! -S "$daemon_socket" ] && [ "$tries" -lt 150 ]; do
        sleep 0.02
        tries=$((tries + 1))
    done
    [ -S "$daemon_socket" ] || log "nix-daemon does not listen on $daemon_socket"
}

standin_init() {
    set -u
    host_name=$1
    sshd=$2
    boots=0
    action=
    sshd_pid=
    trap 'action=${action:-reboot}' HUP  # a power-off under way stays one
    trap 'action=poweroff' TERM INT
    while :; do
        sshd_pid=
        boot || { log "boot failed"; action=failed; }
        while [ -z "$action" ]; do
            wait  # returns when sshd ends or a signal comes (and reaps orphans meanwhile)
            if [ -z "$action" ] && ! kill -0 "$sshd_pid" 2>/dev/null; then
                log "sshd exited; $host_name stops"
                action=failed
            fi
        done
        # The end of this boot for every process but this one: sessions, sshd, whatever runs.
        kill -s KILL -- -1 2>/dev/null
        while kill -0 "$sshd_pid" 2>/dev/null; do
            wait "$sshd_pid" 2>/dev/null  # reaped: its port is free again
        done
        case "$action" in
            reboot) log "rebooting $host_name"; action= ;;
            poweroff) log "$host_name powers off"; exit 0 ;;
            *) exit 1 ;;
        esac
    done
}

in_a_host() {
    [ -f /run/standin/boot_id ] && return 0
    echo "${0##*/}: not inside a nixlift sandbox host" >&2
    exit 1
}

reboot_host() {
    case "${1-}" in
        -h|--help) echo "Usage: reboot    reboot this nixlift sandbox host"; exit 0 ;;
    esac
    in_a_host
    kill -s HUP 1
}

# A store path as a JSON string, or null (store paths need no escaping; anything else is shown
# as null with a note on stderr).
json_path() {
    case "$1" in
        "") printf 'null' ;;
        *[!A-Za-z0-9/+._?=-]*) printf 'null'; echo "standin-bootctl: ignoring '$1'" >&2 ;;
        *) printf '"%s"' "$1" ;;
    esac
}

read_entry() {
    value=
    [ -f "$1" ] && { read -r value <"$1" || :; }
    printf '%s' "$value"
}

# write_entry FILE GIVEN: make the system GIVEN (a path, links followed) the entry in
# $state/FILE; exit 1 if it is no system. Sets $system. Quiet: each tool says what it did.
write_entry() {
    file=$1
    given=$2
    system=$(readlink -f -- "$given") || system=
    if [ -z "$system" ] || [ ! -d "$system" ] || [ ! -e "$system/bin/switch-to-configuration" ]; then
        echo "${0##*/}: $given is not a system (no bin/switch-to-configuration)" >&2
        exit 1
    fi
    case "$system" in
        *[!A-Za-z0-9/+._?=-]*) echo "${0##*/}: $system is not a store path" >&2; exit 1 ;;
    esac
    mkdir -p "$state"
    printf '%s\n' "$system" >"$state/.$file.tmp.$$"
    mv -f "$state/.$file.tmp.$$" "$state/$file"
}

set_entry() {
    write_entry "$1" "$2"
    echo "$1: $system"
}

standin_bootctl() {
    usage="Usage: standin-bootctl status | set-default PATH | set-oneshot PATH | clear-oneshot"
    case "${1-} $#" in
        "status 1")
            in_a_host
            read -r boot_id </proc/sys/kernel/random/boot_id
            printf '{"default": %s, "oneshot": %s, "booted": %s, "current": %s, "bootId": "%s"}\n' \
                "$(json_path "$(read_entry "$state/boot-default")")" \
                "$(json_path "$(read_entry "$state/boot-once")")" \
                "$(json_path "$(readlink /run/booted-system)")" \
                "$(json_path "$(readlink /run/current-system)")" \
                "$boot_id"
            ;;
        "set-default 2") in_a_host; set_entry boot-default "$2" ;;
        "set-oneshot 2") in_a_host; set_entry boot-once "$2" ;;
        "clear-oneshot 1") in_a_host; rm -f "$state/boot-once" ;;
        "-h "*|"--help "*) echo "$usage" ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
}

# generation_link ENTRY: the profile generation systemd-boot's entry ENTRY of NixOS boots,
# nixos-generation-N.conf -> /nix/var/nix/profiles/system-N-link, in $link; exit 1 if ENTRY is
# no such name or that generation does not exist.
generation_link() {
    n=
    case "$1" in
        nixos-generation-*.conf) n=${1#nixos-generation-}; n=${n%.conf} ;;
    esac
    case "$n" in
        ""|*[!0-9]*)
            echo "bootctl: '$1' is not a boot entry of NixOS (nixos-generation-N.conf)" >&2
            exit 1
            ;;
    esac
    link=/nix/var/nix/profiles/system-$n-link
    if [ ! -L "$link" ]; then
        echo "bootctl: no boot entry $1: generation $n ($link) does not exist" >&2
        exit 1
    fi
}

systemd_bootctl() {
    usage="Usage: bootctl is-installed | set-default ENTRY | set-oneshot ENTRY
  ENTRY: nixos-generation-N.conf (generation N of /nix/var/nix/profiles/system)
  systemd-boot's bootctl as emulated by a nixlift sandbox host; standin-bootctl shows more"
    case "${1-} $#" in
        "is-installed 1") in_a_host; echo yes ;;
        "set-default 2") in_a_host; generation_link "$2"; write_entry boot-default "$link" ;;
        "set-oneshot 2") in_a_host; generation_link "$2"; write_entry boot-once "$link" ;;
        "-h "*|"--help "*) echo "$usage" ;;
        *)
            echo "bootctl: '$*' is not emulated on a nixlift sandbox host" >&2
            echo "$usage" >&2
            exit 1
            ;;
    esac
}

case "${0##*/}" in
    standin-init) standin_init "$@" ;;
    reboot) reboot_host "$@" ;;
    standin-bootctl) standin_bootctl "$@" ;;
    bootctl) systemd_bootctl "$@" ;;
    *) setup "$@" ;;
esac
