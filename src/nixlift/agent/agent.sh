# nixlift's agent: the program nixlift runs on a host, as root. POSIX sh, coreutils, util-linux.
#
# Installed once per boot as /run/nixlift/agent-HASH (see nixlift/agent/protocol.py, which also
# holds the typed Python side of every action) and started as `sh AGENT`. It reads one request
# on stdin, a JSON object written one `"key": value` per line (json.dumps with indent=0), acts,
# and writes one JSON object on one line to stdout. String values it uses are plain (nixlift
# sends only store paths, its own directories and words there); values it only keeps (lock
# information, history records, reasons) are taken and given back as raw JSON.
#
# Everything nixlift does to a host that needs root is here: activation detached from the SSH
# session, automatic and magic rollback, the lock, the history, generations, boot entries.
# Values arrive through `take`/`read_request`, which assign them with eval:
# (and mkdir -p -m gives the mode to the last directory only, as meant). test's -ef (same file)
# is not in POSIX but in every sh a host has (bash, dash, busybox); where it is not, the test
# fails and the agent takes the longer way it is there to spare (a readlink, a nix-env).
# shellcheck disable=SC2154,SC2034,SC2174,SC3013
set -u
umask 077
profile=/nix/var/nix/profiles/system
run=/run/nixlift
history=/nix/var/nixlift/history.jsonl

# --- the protocol -------------------------------------------------------------------------------

# answer TEXT: the one line of JSON this call prints
answer() { printf '%s\n' "$1"; }

fail() {
  printf '{"error": %s}\n' "$(quote "$1")"
  exit 1
}

# quote TEXT: TEXT as a JSON string (for short texts: reasons, messages)
quote() {
  printf '%s\n' "$1" > "$run/.quote.$$"
  text_file "$run/.quote.$$"
  rm -f "$run/.quote.$$"
}

# text_json VAR FILE: the contents of FILE as a JSON string ("" when there is none) into the
# variable VAR. Control characters go (a tab becomes a space), backslashes and quotes are
# escaped, lines end in \n. Plain text (printable ASCII without a backslash or a quote, up to
# 4 KiB: what most activations print) is read by the shell itself; other text goes through tr
# and sed (in sed's hold space: two processes, not four). text_file FILE prints it instead.
text_json() {
  _j=
  if [ -s "$2" ]; then
    _size=0
    while IFS= read -r _l || [ -n "$_l" ]; do
      _size=$((_size + ${#_l} + 1))
      case "$_l" in
        *[!\ -~]*|*[\\\"]*) _size=4097 ;;
      esac
      [ "$_size" -le 4096 ] || break
      _j="$_j$_l\\n"
    done <"$2"
    if [ "$_size" -gt 4096 ]; then
      _j=$(tr -d '\000-\010\013-\037\177' < "$2" | sed -e 's/	/ /g' -e 's/\\/\\\\/g' \
        -e 's/"/\\"/g' -e 's/$/\\n/' -e '1h' -e '1!H' -e '$!d' -e 'x' -e 's/\n//g')
    fi
  fi
  eval "$1=\"\\\"\$_j\\\"\""
}
text_file() {
  text_json _json "$1"
  printf '%s' "$_json"
}

# json_path VAR TEXT: a store path (or another plain path) as JSON into the variable VAR, null
# when empty or not plain; json_bool VAR 0|1: true or false. Set, not printed: no subshell
# where a value is built in place (the probe's six were a fork each, on every host's lock).
json_path() {
  case "$2" in
    ""|*[!A-Za-z0-9/+._?=:@-]*) eval "$1=null" ;;
    *) eval "$1=\"\\\"\$2\\\"\"" ;;
  esac
}
json_bool() { if [ "$2" = 1 ]; then eval "$1=true"; else eval "$1=false"; fi; }

# path_or_null TEXT, bool 0|1: the same, printed (for a $(…) inside a longer answer)
path_or_null() {
  json_path _json "$1"
  printf '%s' "$_json"
}
bool() {
  json_bool _json "$1"
  printf '%s' "$_json"
}

# print_file FILE: a file of lines, as cat would, without a process
print_file() {
  while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\n' "$_l"; done <"$1"
}

read_request() {
  while IFS= read -r line; do
    case "$line" in
      "{") continue ;;
      "}") return 0 ;;
    esac
    line=${line%,}
    key=${line#\"}
    key=${key%%\"*}
    case "$key" in
      ""|*[!a-z0-9_]*) fail "malformed request line" ;;
    esac
    value=${line#*\": }
    eval "req_$key=\$value"
  done
  fail "the request ended early"
}

# raw KEY: the value of KEY as sent (JSON text), or null
raw() { eval "printf '%s' \"\${req_$1-null}\""; }

# value FIELD: the request's plain value of FIELD into $v (strings unquoted, true/false as 1/0,
# absent or null as empty), refusing escaped text
value() {
  eval "v=\${req_$1-null}"
  case "$v" in
    null) v= ;;
    true) v=1 ;;
    false) v=0 ;;
    \"*\")
      v=${v#\"}
      v=${v%\"}
      case "$v" in *\\*|*\"*) fail "$1: unexpected text" ;; esac ;;
    *[!0-9]*) fail "$1: unexpected value" ;;
  esac
}

# take NAME [NAME…]: each request value NAME into the variable NAME
# (its own loop variable has a name no action uses: sh has no local variables)
take() {
  for _field; do
    value "$_field"
    eval "$_field=\$v"
  done
}

# --- what the host runs ---------------------------------------------------------------------------

systemd_runs() { [ -d /run/systemd/system ]; }

# wraps WRAPPER SYSTEM: WRAPPER is a tree around the NixOS system SYSTEM (deploy-rs' profile:
# the system's files linked, plus deploy-rs-activate), so running SYSTEM is running WRAPPER
wraps() {
  [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ] && [ -e "$1/deploy-rs-activate" ] \
    && [ "$(readlink -f "$1/nixos-version")" = "$(readlink -f "$2/nixos-version")" ]
}

# probe: the host's state as JSON, into $probed (set here, not printed into a $(…): no fork)
probe() {
  take system
  # (a host that runs the system it is asked about, or names it in its profile, needs no
  # readlink for it: test's -ef compares the files themselves)
  if [ -n "$system" ] && [ /run/current-system -ef "$system" ]; then
    current=$system
  else
    current=$(readlink /run/current-system 2>/dev/null)
  fi
  if [ -n "$system" ] && [ "$profile" -ef "$system" ]; then
    in_profile=$system
  else
    in_profile=$(readlink -e "$profile" 2>/dev/null)
  fi
  valid=0
  # What the host runs or its profile names is a GC root, so valid, and a path that is not there
  # is not: neither needs a nix-store (~13 ms of CPU, on every host of a fleet)
  if [ -z "$system" ]; then :
  elif [ "$system" = "$current" ] || [ "$system" = "$in_profile" ]; then valid=1
  elif [ -e "$system" ] && nix-store --check-validity "$system" 2>/dev/null; then valid=1
  fi
  systemd=0
  systemd_runs && systemd=1
  daemon=0
  command -v nix-daemon >/dev/null 2>&1 && daemon=1
  boot_id=
  read -r boot_id 2>/dev/null </proc/sys/kernel/random/boot_id
  if [ "$valid" = 1 ] && wraps "$system" "$current"; then current=$system; fi
  json_path j_current "$current"
  json_path j_profile "$in_profile"
  json_path j_boot "$boot_id"
  json_bool j_valid "$valid"
  json_bool j_systemd "$systemd"
  json_bool j_daemon "$daemon"
  probed="{\"current\": $j_current, \"profile\": $j_profile, \"boot_id\": $j_boot,"
  probed="$probed \"valid\": $j_valid, \"systemd\": $j_systemd, \"daemon\": $j_daemon}"
}

# --- activation, detached from the SSH session ------------------------------------------------

# nixos_system SYSTEM: refuse what is not a NixOS system before touching the profile
nixos_system() {
  [ -e "$1/nixos-version" ] && [ -x "$1/bin/switch-to-configuration" ]
}

# Waiting without polling: a waiter holds a FIFO open (read-write, so it never sees an end of
# file and nothing written to it is lost) and reads one line; whoever it waits for writes a line
# into the FIFO (opened read-write too: that never blocks, whether or not anyone waits).
# wait_line FD SECONDS: the first line from FD into $line, or "timeout" after SECONDS
# The timer holds none of the caller's files: a `sleep` left behind would keep the SSH
# session's output open (the call would not end until it did) or hold a lock's descriptor. A
# TERM that lands while `sleep` is being started is noted and acted on once its pid is known.
# bash (NixOS's sh) has a read with a time limit: no timer at all there.
wait_line() {
  if [ -n "${BASH_VERSION-}" ]; then
    # shellcheck disable=SC3045
    IFS= read -r -t "$2" line <&"$1" || line=timeout
    return 0
  fi
  (
    stop=
    trap 'stop=1' TERM
    sleep "$2" &
    s=$!
    [ -n "$stop" ] || wait "$s"
    if [ -n "$stop" ]; then kill "$s" 2>/dev/null; exit 0; fi
    printf 'timeout\n' >&"$1"
  ) >/dev/null 2>&1 8>&- 9>&- &
  sleeper=$!
  IFS= read -r line <&"$1"
  kill "$sleeper" 2>/dev/null
}

# notify FIFO WORD: wake whoever waits on FIFO
notify() {
  [ -p "$1" ] && printf '%s\n%s\n' "$2" "$2" 1<>"$1"
}

# DIR/status and DIR/outcome are one line each, written in place (no mv: a process on every
# activation) and notified after. A reader takes one as written once it reads a whole line:
# written_line FILE VAR, the line into VAR (a file being written is empty, or a line without its
# end: not yet).
written_line() {
  [ -s "$1" ] && IFS= read -r "$2" <"$1"
}

finish_status() {
  printf '%s\n' "$2" > "$1/status"
  notify "$1/status.fifo" "$2"
}

# decide DIR OUTCOME REASON [SYSTEM]: the activation's end, with what the host runs now (SYSTEM,
# the one it should run, is compared with test's -ef: no readlink when it is that one)
decide() {
  if [ -n "${4-}" ] && [ /run/current-system -ef "$4" ]; then
    json_path j_running "$4"
  else
    json_path j_running "$(readlink /run/current-system 2>/dev/null)"
  fi
  printf '{"outcome": "%s", "reason": %s, "running": %s}\n' "$2" "$3" "$j_running" \
    > "$1/outcome"
  notify "$1/outcome.fifo" "$2"
}

# switch_to SYSTEM GOAL RUNNER: what activating means. RUNNER deploy-rs: the profile's own
# deploy-rs-activate (as deploy-rs runs it: PROFILE set, BOOT=1 or DRY_ACTIVATE=1 for those
# goals; it has no `test`, for which switch-to-configuration runs)
switch_to() {
  if [ "$3" = deploy-rs ] && [ "$2" != test ]; then
    how=
    case "$2" in boot) how=BOOT=1 ;; dry-activate) how=DRY_ACTIVATE=1 ;; esac
    target=$1
    [ "$2" = dry-activate ] || target=$profile
    (cd / && exec env PROFILE="$target" ${how:+"$how"} "$1/deploy-rs-activate")
  else
    "$1/bin/switch-to-configuration" "$2"
  fi
}

# activate DIR SYSTEM GOAL SET_PROFILE AUTO MAGIC CONFIRM LIMIT [RUNNER] (detached; see start)
# DIR/status gets switch-to-configuration's exit status as soon as activation ends, DIR/outcome
# the decision at the end. With MAGIC it waits CONFIRM seconds for DIR/canary to be deleted by
# the deployer over a new connection, and rolls back if it is not (or DIR/abort appears).
activate() {
  dir=$1 sys=$2 goal=$3 set_profile=$4 auto=$5 magic=$6 confirm=$7 limit=$8 runner=${9-}
  exec 8>>"$run/activation.lock"
  flock 8
  # What ran before, for a rollback: DIR/previous, the profile's link and the running system, a
  # line each (empty for a link that is not there); one readlink when both are links.
  if [ -L "$profile" ] && [ -L /run/current-system ]; then
    readlink -- "$profile" /run/current-system > "$dir/previous" 2>/dev/null
  else
    { readlink "$profile" || echo; readlink /run/current-system || echo; } > "$dir/previous" 2>/dev/null
  fi
  # (a profile that is the system already needs no new generation: -ef compares the files)
  if [ "$set_profile" = 1 ] && ! [ "$profile" -ef "$sys" ] \
    && ! nix-env -p "$profile" --set "$sys" >"$dir/log" 2>&1; then
    finish_status "$dir" 91
    decide "$dir" failed '"setting the system profile failed"'
    return
  fi
  # A hanging activation is stopped (status 124) and, like a failing one, rolled back.
  if [ "$runner" = deploy-rs ]; then
    set -- sh "$self" switch_to "$sys" "$goal" "$runner"
  else
    set -- "$sys/bin/switch-to-configuration" "$goal"
  fi
  if command -v timeout >/dev/null 2>&1; then
    timeout "$limit" "$@" >>"$dir/log" 2>&1
  else
    "$@" >>"$dir/log" 2>&1
  fi
  rc=$?
  [ "$rc" = 124 ] && echo "nixlift: switch-to-configuration took longer than $limit s" >>"$dir/log"
  finish_status "$dir" "$rc"
  if [ "$rc" != 0 ] && [ "$rc" != 100 ]; then
    reason="\"switch-to-configuration $goal exited with $rc\""
    [ "$rc" = 124 ] && reason="\"switch-to-configuration $goal took longer than $limit s\""
    if [ "$auto" = 1 ]; then go_back "$dir" "$goal" "$set_profile" "$reason"
    else decide "$dir" failed "$reason"
    fi
    return
  fi
  if [ "$magic" != 1 ]; then
    decide "$dir" activated null "$sys"
    return
  fi
  exec 7<>"$dir/confirm.fifo"
  : > "$dir/canary"
  wait_line 7 "$confirm"
  exec 7>&-
  if [ -e "$dir/abort" ]; then
    rm -f "$dir/canary"
    go_back "$dir" "$goal" "$set_profile" "$(cat "$dir/abort")"
  elif [ -e "$dir/canary" ]; then
    rm -f "$dir/canary"
    go_back "$dir" "$goal" "$set_profile" "\"not confirmed within $confirm s\""
  else
    decide "$dir" confirmed null "$sys"
  fi
}

# go_back DIR GOAL SET_PROFILE REASON: the one rollback. The profile points where it pointed
# before (the failed generation removed), and what ran before runs again: the previous system,
# or, when /run/current-system was missing, the previous profile generation. The decision says
# what the host runs afterwards, whatever happened.
go_back() {
  dir=$1 goal=$2 set_profile=$3 reason=$4
  prev_link='' prev_system=''
  { IFS= read -r prev_link; IFS= read -r prev_system; } < "$dir/previous"
  echo "nixlift: rolling back" >>"$dir/log"
  if [ "$set_profile" = 1 ]; then
    failed_link=$(readlink "$profile" 2>/dev/null)
    if [ -n "$prev_link" ]; then
      ln -sfn "$prev_link" "$profile.nixlift-tmp" && mv -T "$profile.nixlift-tmp" "$profile"
    else
      rm -f "$profile"
    fi
    if [ -n "$failed_link" ] && [ "$failed_link" != "$prev_link" ]; then
      rm -f "/nix/var/nix/profiles/$failed_link"
    fi
  fi
  target=$prev_system
  if [ -z "$target" ] && [ -n "$prev_link" ]; then
    target=$(readlink -e "$profile" 2>/dev/null)
  fi
  again=switch
  case "$goal" in test|boot) again=$goal ;; esac
  if [ -n "$target" ] && nixos_system "$target"; then
    if "$target/bin/switch-to-configuration" "$again" >>"$dir/log" 2>&1; then
      decide "$dir" rolled-back "$reason" "$target"
    else
      decide "$dir" rollback-failed "$reason"
    fi
  elif [ "$goal" != boot ] && [ -z "$target" ]; then
    # nothing ran before and there is no generation to go back to: take the failed system's
    # name off /run/current-system, so nothing claims it runs
    rm -f /run/current-system
    decide "$dir" rolled-back "$reason"
  elif [ "$goal" = boot ]; then
    decide "$dir" rolled-back "$reason"
  else
    decide "$dir" rollback-failed "$reason"
  fi
}

# sweep: what earlier activations left in /run goes two hours after they started (their
# watchdogs end within minutes; a deployer that lost its connection may still ask for the
# decision). Each directory's DIR/started holds the host's uptime in seconds at its start:
# /proc/uptime, read and test are the shell's own, so a sweep starts a process only when there
# is something to remove. A directory without one (an older agent's) is given one now. Sets $up
# (empty without /proc/uptime: then nothing goes; /run is emptied at boot anyway).
sweep() {
  up=
  read -r up _ 2>/dev/null </proc/uptime
  up=${up%.*}
  [ -n "$up" ] || return 0
  old=
  for d in "$run"/act-*; do
    [ -d "$d" ] || continue
    began=
    [ -f "$d/started" ] && read -r began <"$d/started"
    case "$began" in
      ""|*[!0-9-]*|-|*?-*) printf '%s\n' "$up" >"$d/started" ;;
      *) [ $((up - began)) -le 7200 ] || old="$old $d" ;;
    esac
  done
  # (split into words on purpose: the names are ours, act- and hex digits)
  # shellcheck disable=SC2086
  [ -z "$old" ] || rm -rf $old
}

# start: run `activate` detached, so a dropped connection cannot stop it half way, then wait
# for switch-to-configuration's status (a little longer than the host's own time limit).
start() {
  take dir system goal set_profile auto_rollback magic confirm_timeout activation_timeout runner
  case "$dir" in "$run"/act-*) ;; *) fail "dir must be under $run" ;; esac
  case "$goal" in switch|boot|test|dry-activate) ;; *) fail "unknown goal $goal" ;; esac
  case "$runner" in ""|switch-to-configuration|deploy-rs) ;; *) fail "unknown runner $runner" ;; esac
  if ! nixos_system "$system"; then
    answer "{\"refused\": \"not-nixos\", \"system\": $(path_or_null "$system")}"
    return
  fi
  if [ "$runner" = deploy-rs ] && [ ! -x "$system/deploy-rs-activate" ]; then
    answer "{\"refused\": \"no-deploy-rs-activate\", \"system\": $(path_or_null "$system")}"
    return
  fi
  sweep
  mkdir -p "$dir"
  [ -z "$up" ] || printf '%s\n' "$up" >"$dir/started"
  mkfifo "$dir/status.fifo" "$dir/outcome.fifo" "$dir/confirm.fifo" || fail "mkfifo in $dir"
  exec 5<>"$dir/status.fifo"
  set -- "$dir" "$system" "$goal" "$set_profile" "$auto_rollback" "$magic" "$confirm_timeout" \
    "$activation_timeout" "$runner"
  if systemd_runs && command -v systemd-run >/dev/null 2>&1; then
    systemd-run --quiet --collect --unit "nixlift-activate-${dir##*/}" \
      sh "$self" activate "$@"
  else
    # (not holding the deployer's lock, fd 9, when this call came through the lock's session)
    setsid sh "$self" activate "$@" </dev/null >/dev/null 2>&1 5>&- 8>&- 9>&- &
  fi
  written_line "$dir/status" status || wait_line 5 "$((activation_timeout + 15))"
  exec 5>&-
  written_line "$dir/status" status || status=null
  systemd=0
  systemd_runs && systemd=1
  json_bool j_systemd "$systemd"
  text_json j_log "$dir/log"
  answer "{\"status\": $status, \"systemd\": $j_systemd, \"log\": $j_log}"
}

# await DIR TIMEOUT: the decision, once there is one (or undecided)
await_decision() {
  if ! written_line "$1/outcome" _decided && [ -p "$1/outcome.fifo" ]; then
    exec 6<>"$1/outcome.fifo"
    written_line "$1/outcome" _decided || wait_line 6 "$2"
    exec 6>&-
  fi
  if written_line "$1/outcome" _decided; then
    answer "$_decided"
  else
    answer '{"outcome": "undecided", "reason": null, "running": null}'
  fi
}

decision() {
  take dir timeout
  await_decision "$dir" "$timeout"
}

# confirm: magic rollback's proof, sent over a new connection: delete the canary, then report
# the watchdog's decision (one round trip instead of two)
confirm() {
  take dir
  rm "$dir/canary" 2>/dev/null || { answer '{"outcome": "no-canary"}'; return; }
  notify "$dir/confirm.fifo" confirmed
  await_decision "$dir" 30
}

# abort: the deployer saw a health check fail: roll back now, not at the timeout
abort() {
  take dir
  raw reason > "$dir/abort.tmp"
  mv "$dir/abort.tmp" "$dir/abort"
  notify "$dir/confirm.fifo" abort
  await_decision "$dir" 60
}

# undo: roll back an activation that has ended (no watchdog waits)
undo() {
  take dir goal set_profile
  exec 8>>"$run/activation.lock"
  flock 8
  go_back "$dir" "$goal" "$set_profile" "$(raw reason)"
  print_file "$dir/outcome"
}

# activation_log DIR: what the activation and its rollback printed
activation_log() {
  take dir
  answer "{\"log\": $(text_file "$dir/log")}"
}

# --- reading what a deploy would change, changing nothing (nixlift plan) ----------------------

# survey: what the host runs, who holds its lock (if anyone), and, with want_keys, what it
# knows of the keys nixlift wrote. It takes no lock and writes nothing: a plan must not wait
# for a deploy, nor make one wait.
survey() {
  take system want_keys
  known=null
  [ "$want_keys" = 1 ] && known=$(keys_known 0)
  holder=null
  [ -s "$run/lock.info" ] && holder=$(cat "$run/lock.info")
  probe
  answer "{\"probe\": $probed, \"keys\": $known, \"holder\": ${holder:-null}}"
}

# with_lines FILE CMD…: CMD with FILE's lines (store paths: no blanks, and no globbing) as its
# last arguments; nothing is run for an empty FILE (xargs -r would do, but it is findutils,
# which the agent does not assume)
with_lines() {
  lines=$1
  shift
  [ -s "$lines" ] || return 0
  (
    set -f
    # shellcheck disable=SC2046
    exec "$@" $(cat "$lines")
  )
}

# closure: the running system's closure ("SIZE PATH" lines), which of the COUNT paths that
# follow the request on stdin (the new system's closure, one a line) this host lacks, and, with
# substitutes, what nix says it would fetch of those from the host's own substituters
closure() {
  take count substitutes
  current=$(readlink /run/current-system 2>/dev/null)
  tmp=$(mktemp -d "$run/.closure.XXXXXX") || fail "cannot make a directory in $run"
  : > "$tmp/sizes"
  : > "$tmp/missing"
  : > "$tmp/dry"
  if [ -n "$current" ] && nix-store --check-validity "$current" 2>/dev/null; then
    if ! { nix-store --query --requisites "$current" > "$tmp/paths" 2>"$tmp/err" \
      && with_lines "$tmp/paths" nix-store --query --size > "$tmp/size" 2>>"$tmp/err"; }; then
      err=$(head -c 300 "$tmp/err")
      rm -rf "$tmp"
      fail "nix-store --query: $err"
    fi
    paste -d ' ' "$tmp/size" "$tmp/paths" > "$tmp/sizes"
  fi
  head -n "$count" > "$tmp/wanted"
  if [ -s "$tmp/wanted" ]; then
    if ! with_lines "$tmp/wanted" nix-store --check-validity --print-invalid \
      > "$tmp/missing" 2>"$tmp/err"; then
      err=$(head -c 300 "$tmp/err")
      rm -rf "$tmp"
      fail "nix-store --check-validity: $err"
    fi
  fi
  if [ "$substitutes" = 1 ] && [ -s "$tmp/missing" ]; then
    with_lines "$tmp/missing" nix-store --realise --dry-run > /dev/null 2> "$tmp/dry"
  fi
  answer "{\"current\": $(path_or_null "$current"), \"closure\": $(text_file "$tmp/sizes"), \"missing\": $(text_file "$tmp/missing"), \"dry_run\": $(text_file "$tmp/dry")}"
  rm -rf "$tmp"
}

# --- the lock: held while our connection (and this process's stdin) lasts ---------------------

lock() {
  take wait system exclusive
  if [ "$exclusive" = 1 ]; then
    exec 9>>"$run/lock"
    if ! flock -w "$wait" 9; then
      holder=$(cat "$run/lock.info" 2>/dev/null)
      answer "{\"busy\": true, \"holder\": ${holder:-null}}"
      exit 75
    fi
    # An activation still running from a deployer that went away holds this one. Only one
    # without a decision can be running (a decided one is ending, and the next activation's
    # own flock waits for that): looked at with the shell's test, the flock taken only then.
    undecided=0
    for d in "$run"/act-*; do
      if [ -d "$d" ] && [ ! -e "$d/outcome" ]; then undecided=1; fi
    done
    if [ "$undecided" = 1 ]; then
      exec 8>>"$run/activation.lock"
      if ! flock -w "$wait" 8; then
        answer '{"busy": true, "holder": {"what": "an activation started by an earlier deploy is still running"}}'
        exit 75
      fi
      exec 8>&-  # (its lock goes with it)
    fi
    raw info > "$run/lock.info"
  fi
  take want_keys
  known=null
  [ "$want_keys" = 1 ] && known=$(keys_known)
  # without `exclusive` (a push: nothing is activated) the same session, without the lock
  probe
  json_bool j_locked "$exclusive"
  answer "{\"locked\": $j_locked, \"open\": true, \"probe\": $probed, \"keys\": $known}"
  # Held until our connection ends. Meanwhile it takes the deploy's record for the history, and
  # the deploy's other calls: each a `call` line, then the request as on a call of its own, its
  # output (stderr too) and then `@nixlift-end STATUS` (no session of its own: round trips and
  # a process start saved on every call).
  # A push's record may come ahead, while its copy runs, as `pending SYSTEM RECORD`: kept, not
  # answered, and written when the session ends if SYSTEM is then in the store (the copy got
  # there), so that nixlift need not wait for an answer after the copy. A `record` line (a
  # failure's) takes its place.
  unset req_action req_info req_wait req_system req_want_keys req_exclusive
  pending=
  while IFS= read -r line; do
    case "$line" in
      "record "*)
        pending=
        append_history "${line#record }"
        answer '{"recorded": true}' ;;
      "pending "*)
        pending=${line#pending } ;;
      call)
        # (without the lock's fds: nothing the call starts may hold the lock)
        ( dispatch ) 2>&1 8>&- 9>&-
        printf '@nixlift-end %s\n' "$?" ;;
    esac
  done
  # (emptied, not removed: an empty one says no holder, as a missing one does, without an rm)
  if [ "$exclusive" = 1 ]; then : > "$run/lock.info"; fi
  if [ -n "$pending" ]; then
    json_path _pushed "${pending%% *}"
    if [ "$_pushed" != null ] && nix-store --check-validity "${pending%% *}" 2>/dev/null; then
      append_history "${pending#* }"
    fi
  fi
}

# append_history RECORD: one line (JSON from the deployer, kept as it came) onto the history
append_history() {
  [ -d "${history%/*}" ] || mkdir -p "${history%/*}"
  printf '%s\n' "$1" >> "$history"
}

# --- keys and secrets ---------------------------------------------------------------------------
# Content arrives on stdin after the request, never in argv. Each file is created empty (mode
# 0600, root) in its destination directory, given its owner and mode, filled, then renamed into
# place. What nixlift wrote is remembered as DIGEST PATH lines in $keys/state: DIGEST is an HMAC
# (made by the deployer) with this host's own random salt, which only root can read, so a key
# that did not change is not written again and no plain hash of a secret is kept.
keys=/nix/var/nixlift/keys

# keys_known [MAKE]: the salt (made on first use, unless MAKE is 0: then a null salt when there
# is none, and nothing is written) and the digest of every key nixlift wrote that is still
# there, as JSON
keys_known() {
  if [ "${1-1}" = 0 ] && [ ! -s "$keys/salt" ]; then
    printf '{"salt": null, "present": {}}'
    return
  fi
  mkdir -p "$keys"
  if [ ! -s "$keys/salt" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$keys/salt.tmp"
    mv "$keys/salt.tmp" "$keys/salt"
  fi
  printf '{"salt": "%s", "present": {' "$(cat "$keys/salt")"
  sep=
  if [ -f "$keys/state" ]; then
    while read -r digest path; do
      [ -f "$path" ] || continue
      printf '%s%s: "%s"' "$sep" "$(path_or_null "$path")" "$digest"
      sep=", "
    done < "$keys/state"
  fi
  printf '}}'
}

# key_dir DIR HOW: make the destination directory as the key's kind wants it
key_dir() {
  case "$2" in
    keys)  # NixOps, colmena: root:keys 0750
      if [ ! -d "$1" ]; then
        mkdir -p -m 0750 "$1" || return 1
        chown root:keys "$1" 2>/dev/null || :  # (no keys group yet: root's until there is)
      fi ;;
    make) mkdir -p -m 0755 "$1" || return 1 ;;  # morph's mkDirs
    *) [ -d "$1" ] || { echo "$1 does not exist" >&2; return 1; } ;;
  esac
}

# write_key PATH USER GROUP MODE SIZE DIRS: SIZE bytes from stdin into PATH
write_key() {
  dir=${1%/*}
  tmp="$dir/.${1##*/}.nixlift-tmp"
  key_dir "${dir:-/}" "$6" || return 1
  rm -f "$tmp"
  : > "$tmp" || return 1
  if getent passwd "$2" >/dev/null && getent group "$3" >/dev/null; then
    chown "$2:$3" "$tmp" || return 1
  else
    pending="$pending${pending:+, }$(path_or_null "$1")"
  fi
  chmod "$4" "$tmp" || return 1
  if [ "$5" -gt 0 ]; then
    dd bs="$5" count=1 iflag=fullblock of="$tmp" 2>/dev/null || return 1
  fi
  mv -f "$tmp" "$1"
}

json_list() {
  printf '['
  sep=
  for item; do printf '%s%s' "$sep" "$(path_or_null "$item")"; sep=", "; done
  printf ']'
}

upload_keys() {
  take count prune declared_count
  mkdir -p "$keys"
  : > "$keys/state.new"
  written='' unchanged='' pending='' i=0 in_run_keys=0
  set --
  while [ "$i" -lt "$count" ]; do
    take "k${i}_path" "k${i}_user" "k${i}_group" "k${i}_mode" "k${i}_size" "k${i}_digest" \
      "k${i}_write" "k${i}_dirs"
    eval "path=\$k${i}_path user=\$k${i}_user group=\$k${i}_group mode=\$k${i}_mode"
    eval "size=\$k${i}_size digest=\$k${i}_digest write=\$k${i}_write dirs=\$k${i}_dirs"
    case "$path" in /*) ;; *) fail "not an absolute path: $path" ;; esac
    case "$mode" in *[!0-7]*|"") fail "not a file mode: $mode" ;; esac
    if [ "$write" = 1 ]; then
      if ! write_key "$path" "$user" "$group" "$mode" "$size" "$dirs" 2>"$run/.keyerr.$$"; then
        err=$(head -c 300 "$run/.keyerr.$$")
        rm -f "${path%/*}/.${path##*/}.nixlift-tmp" "$run/.keyerr.$$"
        fail "cannot write $path: ${err:-its directory is not writable}"
      fi
      rm -f "$run/.keyerr.$$"
      written="$written${written:+ }$path"
    else
      unchanged="$unchanged${unchanged:+ }$path"
    fi
    case "$path" in /run/keys/*) in_run_keys=1 ;; esac
    printf '%s %s\n' "$digest" "$path" >> "$keys/state.new"
    i=$((i + 1))
  done
  removed=
  if [ "$prune" = 1 ] && [ -f "$keys/state" ]; then
    # keys nixlift wrote before that are no longer declared go; the others stay remembered
    j=0 declared=
    while [ "$j" -lt "$declared_count" ]; do
      value "declared_$j"
      declared="$declared
$v"
      j=$((j + 1))
    done
    while read -r digest path; do
      if printf '%s\n' "$declared" | grep -qxF -- "$path"; then
        grep -qF -- " $path" "$keys/state.new" 2>/dev/null \
          || printf '%s %s\n' "$digest" "$path" >> "$keys/state.new"
      else
        rm -f "$path"
        removed="$removed${removed:+ }$path"
      fi
    done < "$keys/state"
  elif [ -f "$keys/state" ]; then
    while read -r digest path; do
      grep -qF -- " $path" "$keys/state.new" || printf '%s %s\n' "$digest" "$path" >> "$keys/state.new"
    done < "$keys/state"
  fi
  mv -f "$keys/state.new" "$keys/state"
  if [ "$in_run_keys" = 1 ]; then
    # NixOps' signal that the keys are there (nixops-keys.service waits for it)
    mkdir -p -m 0750 /run/keys && { chown root:keys /run/keys 2>/dev/null || :; }
    touch /run/keys/done
  fi
  # (word splitting of the lists is wanted: paths were checked to hold no blanks by nixlift)
  # shellcheck disable=SC2086
  answer "{\"written\": $(json_list $written), \"unchanged\": $(json_list $unchanged), \"removed\": $(json_list $removed), \"owner_pending\": [${pending}]}"
}

# --- a store for a user sudo asks a password of ------------------------------------------------
# nix's own ssh cannot give sudo a password, so `sudo nix-daemon --stdio` cannot serve a copy for
# such a user. Instead a nix-daemon run as root here serves it on a socket in a directory only
# that user (and root) may enter, trusting that user; it lives as long as this call's stdin.
serve_store() {
  user=${SUDO_USER:-}
  [ -n "$user" ] || fail "serve_store is for a user who became root with sudo"
  dir=$(mktemp -d /run/nixlift-store.XXXXXXXX) || fail "cannot make a directory in /run"
  chown "$user" "$dir" || fail "cannot give $dir to $user"
  NIX_DAEMON_SOCKET_PATH="$dir/socket" nix-daemon --option trusted-users "root $user" \
    </dev/null >"$dir/log" 2>&1 &
  daemon=$!
  waited=0
  while [ ! -S "$dir/socket" ] && [ "$waited" -lt 250 ]; do
    sleep 0.02
    waited=$((waited + 1))
  done
  if [ ! -S "$dir/socket" ]; then
    kill "$daemon" 2>/dev/null
    fail "nix-daemon did not start: $(head -c 300 "$dir/log")"
  fi
  answer "{\"socket\": $(path_or_null "$dir/socket")}"
  cat >/dev/null
  kill "$daemon" 2>/dev/null
  wait "$daemon" 2>/dev/null
  rm -rf "$dir"
}

# --- a binary cache -------------------------------------------------------------------------------

# substitute: fetch a system (and its closure) from a binary cache, trusted for this one call
substitute() {
  take system url key
  log=$run/.substitute.$$
  if nix-store --realise "$system" --no-gc-warning --option extra-substituters "$url" \
    --option extra-trusted-public-keys "$key" >"$log" 2>&1; then ok=true
  else ok=false
  fi
  answer "{\"ok\": $ok, \"log\": $(text_file "$log")}"
  rm -f "$log"
}

# --- deploy-rs profiles besides the system -------------------------------------------------------
# As deploy-rs' activate-rs does for them, but as root for the user: the profile path (deploy-rs'
# default for the user, or the one given) is set to the new path, its deploy-rs-activate runs as
# the user with PROFILE set, and a failure goes back to the previous generation and activates it.

# as_user USER CMD…: run CMD as USER (root runs it itself)
as_user() {
  u=$1
  shift
  if [ "$u" = root ]; then "$@"; else runuser -u "$u" -- "$@"; fi
}

# run_profile USER PATH PROFILE HOW LIMIT LOG: the profile's deploy-rs-activate, as deploy-rs runs it
run_profile() {
  (cd / && if command -v timeout >/dev/null 2>&1; then
    as_user "$1" timeout "$5" env PROFILE="$3" ${4:+"$4"} "$2/deploy-rs-activate"
  else
    as_user "$1" env PROFILE="$3" ${4:+"$4"} "$2/deploy-rs-activate"
  fi) >>"$6" 2>&1
}

profile_action() {
  take profile_name path user profile_path goal auto_rollback activation_timeout
  name=$profile_name
  case "$name" in ""|*[!A-Za-z0-9._-]*) fail "not a profile name: $name" ;; esac
  case "$goal" in switch|boot|test|dry-activate) ;; *) fail "unknown goal $goal" ;; esac
  [ -x "$path/deploy-rs-activate" ] \
    || fail "$path has no deploy-rs-activate (make the profile with deploy-rs' lib.activate.*)"
  home=$(getent passwd "$user" | cut -d: -f6)
  [ -n "$home" ] || fail "there is no user $user on this host"
  [ "$user" = root ] || command -v runuser >/dev/null 2>&1 \
    || fail "runuser (util-linux) is needed to activate a profile as $user"
  if [ -z "$profile_path" ]; then
    if [ "$user" = root ]; then profile_path=/nix/var/nix/profiles/per-user/root/$name
    elif [ -d "/nix/var/nix/profiles/per-user/$user" ]; then
      profile_path=/nix/var/nix/profiles/per-user/$user/$name
    else profile_path=$home/.local/state/nix/profiles/$name
    fi
  fi
  case "$profile_path" in /*) ;; *) fail "not an absolute path: $profile_path" ;; esac
  log=$run/.profile.$$
  : > "$log"
  how=
  case "$goal" in boot) how=BOOT=1 ;; dry-activate) how=DRY_ACTIVATE=1 ;; esac
  if [ "$goal" = dry-activate ]; then
    # nothing is installed: the path itself says what it would do
    if run_profile "$user" "$path" "$path" "$how" "$activation_timeout" "$log"; then
      outcome=activated status=0
    else
      status=$? outcome=failed
    fi
    answer "{\"outcome\": \"$outcome\", \"status\": $status, \"profile\": $(path_or_null "$profile_path"), \"log\": $(text_file "$log")}"
    rm -f "$log"
    return
  fi
  as_user "$user" mkdir -p "${profile_path%/*}" >>"$log" 2>&1 \
    || fail "cannot make ${profile_path%/*} as $user: $(head -c 300 "$log")"
  previous=$(readlink "$profile_path" 2>/dev/null)
  if ! as_user "$user" nix-env -p "$profile_path" --set "$path" >>"$log" 2>&1; then
    answer "{\"outcome\": \"failed\", \"status\": 91, \"profile\": $(path_or_null "$profile_path"), \"log\": $(text_file "$log")}"
    rm -f "$log"
    return
  fi
  status=0
  run_profile "$user" "$path" "$profile_path" "$how" "$activation_timeout" "$log" || status=$?
  outcome=activated
  if [ "$status" != 0 ]; then
    outcome=failed
    if [ "$auto_rollback" = 1 ]; then
      echo "nixlift: rolling the profile $name back" >>"$log"
      failed_link=$(readlink "$profile_path" 2>/dev/null)
      if [ -n "$previous" ]; then
        ln -sfn "$previous" "$profile_path.nixlift-tmp" && mv -T "$profile_path.nixlift-tmp" "$profile_path"
      else
        rm -f "$profile_path"
      fi
      [ -n "$failed_link" ] && [ "$failed_link" != "$previous" ] && rm -f "${profile_path%/*}/$failed_link"
      outcome=rolled-back
      if [ -n "$previous" ]; then
        back=$(readlink -f "$profile_path")
        if [ -x "$back/deploy-rs-activate" ]; then
          run_profile "$user" "$back" "$profile_path" "$how" "$activation_timeout" "$log" \
            || outcome=rollback-failed
        fi
      fi
    fi
  fi
  answer "{\"outcome\": \"$outcome\", \"status\": $status, \"profile\": $(path_or_null "$profile_path"), \"log\": $(text_file "$log")}"
  rm -f "$log"
}

# --- history and generations ------------------------------------------------------------------

record() {
  [ -d "${history%/*}" ] || mkdir -p "${history%/*}"
  raw entry >> "$history"
  printf '\n' >> "$history"
  answer '{}'
}

show_history() {
  answer "{\"history\": $(text_file "$history")}"
}

generations() {
  printf '{"profile": %s, "running": %s, "generations": [' \
    "$(path_or_null "$(readlink "$profile" 2>/dev/null)")" \
    "$(path_or_null "$(readlink /run/current-system 2>/dev/null)")"
  sep=
  for link in /nix/var/nix/profiles/system-*-link; do
    [ -L "$link" ] || continue
    printf '%s{"link": %s, "created": %s, "system": %s}' "$sep" "$(path_or_null "${link##*/}")" \
      "$(stat -c %Y "$link")" "$(path_or_null "$(readlink "$link")")"
    sep=", "
  done
  answer ']}'
}

# switch_generation: make the profile point at an existing generation and activate it
# (manual rollback)
switch_generation() {
  take link
  case "$link" in system-*-link) ;; *) fail "not a generation: $link" ;; esac
  [ -L "/nix/var/nix/profiles/$link" ] || fail "there is no generation $link"
  exec 8>>"$run/activation.lock"
  flock 8
  log=$run/.switch.$$
  ln -sfn "$link" "$profile.nixlift-tmp" && mv -T "$profile.nixlift-tmp" "$profile"
  if "$profile/bin/switch-to-configuration" switch >"$log" 2>&1; then outcome=switched
  else outcome=failed
  fi
  answer "{\"outcome\": \"$outcome\", \"running\": $(path_or_null "$(readlink /run/current-system 2>/dev/null)"), \"log\": $(text_file "$log")}"
  rm -f "$log"
}

# --- boot entries -----------------------------------------------------------------------------

# set_boot: SYSTEM becomes the profile and the boot default (going back after a bad reboot)
set_boot() {
  take system
  nixos_system "$system" || fail "$system is not a NixOS system"
  log=$run/.boot.$$
  if nix-env -p "$profile" --set "$system" >"$log" 2>&1 \
    && "$system/bin/switch-to-configuration" boot >>"$log" 2>&1; then ok=true
  else ok=false
  fi
  answer "{\"ok\": $ok, \"log\": $(text_file "$log")}"
  rm -f "$log"
}

# systemd-boot names its entries after profile generations
entry_of() {
  for link in /nix/var/nix/profiles/system-*-link; do
    if [ "$(readlink "$link")" = "$1" ]; then
      n=${link##*/system-}
      echo "nixos-generation-${n%-link}.conf"
      return 0
    fi
  done
  return 1
}

has_systemd_boot() {
  command -v bootctl >/dev/null 2>&1 && bootctl is-installed >/dev/null 2>&1
}

# boot_once: boot NEW on the next boot only, OLD after that (until boot_default NEW). Says
# which mechanism did it, or "none" when the boot loader has no one-shot entry.
boot_once() {
  take new old
  how=none
  if has_systemd_boot; then
    new_entry=$(entry_of "$new") && old_entry=$(entry_of "$old") \
      && bootctl set-default "$old_entry" >/dev/null && bootctl set-oneshot "$new_entry" >/dev/null \
      && how="systemd-boot"
  fi
  answer "{\"mechanism\": \"$how\"}"
}

boot_default() {
  take system
  if has_systemd_boot; then
    entry=$(entry_of "$system") || fail "no boot entry for $system"
    bootctl set-default "$entry" >/dev/null || fail "bootctl set-default $entry failed"
  fi
  answer '{}'
}

# reboot: detached and delayed, so this call returns (and its session closes) before the host goes
reboot_host() {
  nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 </dev/null 8>&- 9>&- &
  answer '{}'
}

# --- main ---------------------------------------------------------------------------------------

self=$0
if [ "${1-}" = activate ]; then
  shift
  # (a hangup ignored, as nohup would, without its process: the activation outlives the session)
  trap '' HUP
  activate "$@"
  exit 0
fi
if [ "${1-}" = switch_to ]; then
  shift
  switch_to "$@"
  exit
fi
# dispatch: read one request from stdin and do what it asks
dispatch() {
  read_request
  take action
  # The first call of a run keeps its stdin open (the deployer may have had to send this script
  # on it), and calls made through a held lock share it: what does not read more of it must not
  # wait on it, nor let a command it runs wait.
  case "$action" in
    lock|serve_store|keys|closure) ;;
    *) exec </dev/null ;;
  esac
  case "$action" in
    probe) probe && answer "$probed" ;;
    lock|start|decision|confirm|abort|undo|activation_log|record|generations|switch_generation|\
    set_boot|boot_once|boot_default) "$action" ;;
    keys) upload_keys ;;
    keys_known) answer "$(keys_known)" ;;
    survey|closure) "$action" ;;
    serve_store) serve_store ;;
    substitute) substitute ;;
    profile) profile_action ;;
    history) show_history ;;
    reboot) reboot_host ;;
    *) fail "unknown action '$action'" ;;
  esac
}

dispatch
