# Init of one nixlift sandbox host. nixlift.sandbox.hosts starts it as
#   unshare --mount --uts --pid --fork --kill-child --mount-proc --propagation private \
#     sh init.sh HOST_DIR HOST_NAME SSHD
# so it runs as PID 1 of its own mount, pid and uts namespaces. It gives the host its own /nix,
# /run, /etc (an overlay on the real /etc), /root and /var/lib/standin, then becomes sshd.
#
#   HOST_DIR   the host's directory: nix/ etc-upper/ etc-work/ root/ state/ (nixlift has put
#              the host's ssh/sshd_config, its host key and hostname into etc-upper/ already)
#   HOST_NAME  the host name (h1, h2, ...)
#   SSHD       absolute path of sshd
#
# Every path below is relative to HOST_DIR: the shell's working directory keeps pointing at it even
# after /root (or /run, /etc) is covered, so HOST_DIR may live anywhere, e.g. under /root.
# Few commands on purpose: each one is a process start, and 250 hosts may start at once.
set -eu

host_dir=$1
host_name=$2
sshd=$3

cd "$host_dir"

mount --bind nix /nix
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -m 0755 /run/sshd
mount -t overlay overlay -o lowerdir=/etc,upperdir=etc-upper,workdir=etc-work /etc
mount --bind state /var/lib/standin
mount --bind root /root
printf '%s\n' "$host_name" >/proc/sys/kernel/hostname

# The listener keeps HOST_DIR as its working directory: /proc/PID/cwd names the sandbox.
exec "$sshd" -D -e -f /etc/ssh/sshd_config
