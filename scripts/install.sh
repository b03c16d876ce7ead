#!/usr/bin/env bash
# Install what nixlift, its demo and its tests need on a fresh Debian (bookworm) machine, as root:
# Nix and OpenSSH, qemu-user + binfmt for building aarch64 systems (the Raspberry Pi case), an
# aarch64 busybox for the stand-in nixpkgs' aarch64 builds, sudo for the sandbox hosts' non-root
# users, and a venv with nixlift and its test bed (testbed/: sandbox hosts, nixlift-sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
need_apt=()
# sudo: the sandbox hosts' users who are not root; python3: Debian's, which the apply-local test
# runs inside a sandbox host (whose /root, where a pyenv would live, is its own); shellcheck: the
# test command checks the shell programs that run on hosts; man-db (and groff), zsh and fish: tests
# read the generated nixlift(1) as man shows it and try the completion scripts in each shell.
pkgs=(nix-bin nix-setup-systemd openssh-server openssh-client iproute2 qemu-user-static binfmt-support
      sudo python3 shellcheck man-db zsh fish)
# Debian's python3 needs python3-venv for `python3 -m venv`; a python that has venv already does not.
python3 -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)
for pkg in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Emulation for aarch64 builds: binfmt_misc must be mounted and qemu-aarch64 registered.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || log "warning: cannot mount binfmt_misc; aarch64 builds through emulation will be refused"
fi
if [ -e /proc/sys/fs/binfmt_misc/status ]; then
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi

# The stand-in nixpkgs builds aarch64 systems with a static aarch64 busybox.
bb=/usr/libexec/nixlift-standin/aarch64-linux/busybox
if [ ! -x "$bb" ]; then
  log "fetching busybox-static:arm64 for aarch64 stand-in builds"
  dpkg --add-architecture arm64
  apt-get update -qq
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null)
  dpkg -x "$tmp"/busybox-static_*_arm64.deb "$tmp/x"
  install -D -m 0755 "$tmp/x/bin/busybox" "$bb"
  rm -rf "$tmp"
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
log "installing nixlift and its development tools into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
log "installing the test bed (nixlift-sandbox) into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e ./testbed
# On the PATH of every new shell, without activating the venv: links in /usr/local/bin.
for program in nixlift nixlift-sandbox; do
  ln -sfn "$PWD/.venv/bin/$program" "/usr/local/bin/$program"
done
log "done: nixlift --help, nixlift-sandbox --help (linked into /usr/local/bin)"
