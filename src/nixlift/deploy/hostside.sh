# nixlift's code on the host: started as `sh -c "$(this file)" nixlift ACTION ARGS…` over SSH.
# Everything a host needs to activate, roll back, lock and record is here, so it works whatever
# system (and whichever tool's generations) the host runs. POSIX sh and coreutils only.
set -u
profile=/nix/var/nix/profiles/system
run=/run/nixlift
history=/nix/var/nixlift/history.jsonl

die() { echo "nixlift: $*" >&2; exit 1; }

# --- activation, detached from the SSH session ------------------------------------------------
# activate DIR SYSTEM GOAL SET_PROFILE AUTO_ROLLBACK MAGIC CONFIRM_TIMEOUT ACTIVATION_TIMEOUT
# Writes DIR/status (switch-to-configuration's exit status) as soon as activation ends and
# DIR/outcome (activated | confirmed | rolled-back:REASON | rollback-failed:REASON) at the end.
# With MAGIC it then waits CONFIRM_TIMEOUT seconds for DIR/canary to be deleted by the deployer
# over a new connection, and rolls back if it was not.
activate() {
  dir=$1 sys=$2 goal=$3 set_profile=$4 auto=$5 magic=$6 confirm=$7 limit=$8
  exec 8>>"$run/activation.lock"
  flock 8
  prev_link=$(readlink "$profile" 2>/dev/null || true)
  prev_system=$(readlink /run/current-system 2>/dev/null || true)
  printf '%s\n' "$prev_link" > "$dir/previous-link"
  printf '%s\n' "$prev_system" > "$dir/previous-system"
  if [ "$set_profile" = 1 ]; then
    if ! nix-env -p "$profile" --set "$sys" >"$dir/log" 2>&1; then
      echo 91 > "$dir/status.tmp"; mv "$dir/status.tmp" "$dir/status"
      echo "rollback-failed:setting the system profile failed" > "$dir/outcome"
      return
    fi
  fi
  # A hanging activation is stopped (status 124) and, like a failing one, rolled back.
  if command -v timeout >/dev/null 2>&1; then
    timeout "$limit" "$sys/bin/switch-to-configuration" "$goal" >>"$dir/log" 2>&1
  else
    "$sys/bin/switch-to-configuration" "$goal" >>"$dir/log" 2>&1
  fi
  rc=$?
  [ "$rc" = 124 ] && echo "nixlift: switch-to-configuration took longer than $limit s" >>"$dir/log"
  echo "$rc" > "$dir/status.tmp"; mv "$dir/status.tmp" "$dir/status"
  if [ "$rc" != 0 ] && [ "$rc" != 100 ]; then
    if [ "$auto" = 1 ]; then
      roll_back "$dir" "$goal" "$set_profile" "switch-to-configuration $goal exited with $rc"
    else
      echo "activated" > "$dir/outcome"
    fi
    return
  fi
  if [ "$magic" != 1 ]; then
    echo "activated" > "$dir/outcome"
    return
  fi
  : > "$dir/canary"
  waited=0
  while [ -e "$dir/canary" ] && [ ! -e "$dir/abort" ] && [ "$waited" -lt "$((confirm * 50))" ]; do
    sleep 0.02
    waited=$((waited + 1))
  done
  if [ -e "$dir/abort" ]; then
    rm -f "$dir/canary"
    roll_back "$dir" "$goal" "$set_profile" "$(cat "$dir/abort")"
  elif [ -e "$dir/canary" ]; then
    rm -f "$dir/canary"
    roll_back "$dir" "$goal" "$set_profile" "not confirmed within ${confirm} s"
  else
    echo "confirmed" > "$dir/outcome"
  fi
}

# roll_back DIR GOAL SET_PROFILE REASON: back to what ran before, the failed generation removed.
roll_back() {
  dir=$1 goal=$2 set_profile=$3 reason=$4
  prev_link=$(cat "$dir/previous-link") prev_system=$(cat "$dir/previous-system")
  echo "rolling back: $reason" >>"$dir/log"
  if [ "$set_profile" = 1 ]; then
    failed_link=$(readlink "$profile" 2>/dev/null || true)
    if [ -n "$prev_link" ]; then
      ln -sfn "$prev_link" "$profile.nixlift-tmp" && mv -T "$profile.nixlift-tmp" "$profile"
    else
      rm -f "$profile"
    fi
    if [ -n "$failed_link" ] && [ "$failed_link" != "$prev_link" ]; then
      rm -f "/nix/var/nix/profiles/$failed_link"
    fi
  fi
  if [ -n "$prev_system" ] && [ -x "$prev_system/bin/switch-to-configuration" ]; then
    again=switch
    case "$goal" in test|boot) again=$goal ;; esac
    if ! "$prev_system/bin/switch-to-configuration" "$again" >>"$dir/log" 2>&1; then
      echo "rollback-failed:$reason; activating $prev_system again failed" > "$dir/outcome"
      return
    fi
  elif [ -z "$prev_system" ] && [ "$goal" != boot ]; then
    rm -f /run/current-system  # nothing ran before: the failed system does not run either
  fi
  echo "rolled-back:$reason" > "$dir/outcome"
}

# start SCRIPT DIR ARGS…: run `activate` detached, so a dropped connection cannot stop it half
# way. SCRIPT is this file's text: `sh -c` gives a script no name to run itself again by.
start() {
  script=$1 dir=$2; shift 2
  # what earlier activations left in /run (long decided: their watchdogs end within minutes)
  find "$run" -maxdepth 1 -name 'act-*' -mmin +120 -exec rm -rf {} + 2>/dev/null
  mkdir -p "$dir"
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
    systemd-run --quiet --collect --unit "nixlift-activate-$(basename "$dir")" \
      sh -c "$script" nixlift activate "$dir" "$@"
  else
    setsid nohup sh -c "$script" nixlift activate "$dir" "$@" </dev/null >/dev/null 2>&1 &
  fi
  # ARGS end with the activation timeout: wait for the status a little longer than that
  for limit; do :; done
  wait_status "$dir" "$((limit + 15))"
}

# wait_status DIR TIMEOUT: until activation has ended; prints its status, whether the host runs
# systemd, and the activation's output.
wait_status() {
  dir=$1 timeout=$2 waited=0
  while [ ! -e "$dir/status" ]; do
    if [ "$waited" -ge "$((timeout * 50))" ]; then
      echo "timeout"; echo "systemd=unknown"; cat "$dir/log" 2>/dev/null; return 0
    fi
    sleep 0.02
    waited=$((waited + 1))
  done
  cat "$dir/status"
  if [ -d /run/systemd/system ]; then echo "systemd=yes"; else echo "systemd=no"; fi
  cat "$dir/log" 2>/dev/null
}

# wait_outcome DIR TIMEOUT: until the watchdog has decided.
wait_outcome() {
  dir=$1 timeout=$2 waited=0
  while [ ! -e "$dir/outcome" ] && [ "$waited" -lt "$((timeout * 50))" ]; do
    sleep 0.02
    waited=$((waited + 1))
  done
  cat "$dir/outcome" 2>/dev/null || echo "undecided"
}

# confirm DIR: magic rollback's proof, sent over a new connection: delete the canary, then
# report the watchdog's decision (one round trip instead of two).
confirm() {
  rm "$1/canary" || { echo "no-canary"; return 0; }
  wait_outcome "$1" 30
}

# abort DIR REASON: the deployer saw a health check fail: roll back now, not at the timeout.
abort() {
  printf '%s\n' "$2" > "$1/abort.tmp" && mv "$1/abort.tmp" "$1/abort"
}

# undo DIR GOAL SET_PROFILE REASON: roll back an activation that has ended (no watchdog waits).
undo() {
  exec 8>>"$run/activation.lock"
  flock 8
  roll_back "$@"
  cat "$1/outcome"
}

# --- the lock: held while our connection (and this process's stdin) lasts ---------------------
# lock INFO WAIT SYSTEM: prints "locked" and the host's state (as `probe` does for SYSTEM) once
# it holds the lock, then holds it until stdin ends.
lock() {
  info=$1 wait=$2 sys=$3
  mkdir -p "$run"
  exec 9>>"$run/lock"
  if ! flock -w "$wait" 9; then
    echo "busy"; cat "$run/lock.info" 2>/dev/null; exit 75
  fi
  # an activation still running from a deployer that went away holds this one
  exec 8>>"$run/activation.lock"
  if ! flock -w "$wait" 8; then
    echo "busy"; echo '{"what": "an activation started by an earlier deploy is still running"}'
    exit 75
  fi
  flock -u 8
  printf '%s\n' "$info" > "$run/lock.info"
  echo "locked"
  probe "$sys"
  echo "end"
  cat >/dev/null
  rm -f "$run/lock.info"
}

# probe SYSTEM: what the host runs, and whether SYSTEM is in its store already
probe() {
  printf 'current=%s\n' "$(readlink /run/current-system 2>/dev/null)"
  printf 'profile=%s\n' "$(readlink -e "$profile" 2>/dev/null)"
  printf 'boot_id=%s\n' "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
  if [ -n "$1" ] && nix-store --check-validity "$1" 2>/dev/null; then echo valid=1
  else echo valid=0
  fi
}

# --- history and generations ------------------------------------------------------------------
record() {
  mkdir -p "$(dirname "$history")"
  printf '%s\n' "$1" >> "$history"
}

show_history() {
  cat "$history" 2>/dev/null || true
}

generations() {
  printf 'current %s\n' "$(readlink "$profile" 2>/dev/null)"
  printf 'running %s\n' "$(readlink /run/current-system 2>/dev/null)"
  for link in /nix/var/nix/profiles/system-*-link; do
    [ -L "$link" ] || continue
    printf 'generation %s %s %s\n' "$(basename "$link")" "$(stat -c %Y "$link")" "$(readlink "$link")"
  done
}

# set_boot SYSTEM: make SYSTEM the profile and the boot default (going back after a bad reboot)
set_boot() {
  nix-env -p "$profile" --set "$1" && exec "$1/bin/switch-to-configuration" boot
}

# The bootloader's entry for a system: systemd-boot names entries after profile generations.
systemd_boot_entry() {
  for link in /nix/var/nix/profiles/system-*-link; do
    if [ "$(readlink "$link")" = "$1" ]; then
      n=${link##*/system-}; echo "nixos-generation-${n%-link}.conf"; return 0
    fi
  done
  return 1
}

# boot_once NEW OLD: boot NEW on the next boot only, OLD after that (until boot_default NEW).
# Prints the mechanism used, or "none" when the bootloader has no one-shot entry.
boot_once() {
  if command -v standin-bootctl >/dev/null 2>&1; then
    standin-bootctl set-default "$2" && standin-bootctl set-oneshot "$1" && echo standin
  elif command -v bootctl >/dev/null 2>&1 && bootctl is-installed >/dev/null 2>&1; then
    new=$(systemd_boot_entry "$1") && old=$(systemd_boot_entry "$2") \
      && bootctl set-default "$old" && bootctl set-oneshot "$new" && echo systemd-boot
  else
    echo none
  fi
}

# boot_default SYSTEM: make SYSTEM's entry the default (after it was found healthy).
boot_default() {
  if command -v standin-bootctl >/dev/null 2>&1; then
    standin-bootctl set-default "$1"
  elif command -v bootctl >/dev/null 2>&1 && bootctl is-installed >/dev/null 2>&1; then
    bootctl set-default "$(systemd_boot_entry "$1")"
  fi
}

# switch_generation LINK: make profile point at that generation and activate it (manual rollback)
switch_generation() {
  link=$1
  [ -L "/nix/var/nix/profiles/$link" ] || die "no generation $link"
  ln -sfn "$link" "$profile.nixlift-tmp" && mv -T "$profile.nixlift-tmp" "$profile"
  exec "$profile/bin/switch-to-configuration" switch
}

action=$1; shift
case "$action" in
  start|activate|wait_status|wait_outcome|confirm|abort|undo|lock|probe|record|show_history|\
  generations|switch_generation|set_boot|boot_once|boot_default)
    "$action" "$@" ;;
  *) die "unknown action $action" ;;
esac
