"""Fan-out: 16 hosts behind one shaped 10 Mbit/s link, each needing the same ~20 MiB closure.

The hosts are sandbox hosts behind a veth pair with a token bucket each way (`up(…,
shaped="10mbit")`, `nixlift_testbed.link`): every byte from the deployer to any host crosses
that one link, as a site's uplink. Each host's system holds one shared 20 MiB path of random
bytes (incompressible) and a few small paths of its own; all are built first (not measured).
Every case gets a fresh sandbox (empty host stores; started, with its cache server, outside the
timed part) and is checked afterwards (every host runs its system; the copy case: h1 has it).

  1 host: nix copy --to ssh-ng://       by hand, one host's closure through the link: the
                                        reference, "one host's copy time" (T1)
  1 host: nixlift deploy                (context) the same host, deployed by nixlift
  16 hosts: nixlift deploy (star)       today's default: a copy per host through the link
                                        (~16 x T1; measured once, even in a full run)
  16 hosts: nixlift --cache file://     `--cache file://DIR --cache-key KEY --cache-url URL`:
                                        pushed to DIR here, DIR served on the hosts' side by
                                        `nixlift cache serve` (in the link's namespace)
  16 hosts: nixlift --cache http://     `--cache http://SERVICE:PORT --cache-key KEY`: pushed
                                        across the link once (HTTP PUT), to a cache on the hosts'
                                        side (nixlift_testbed.httpserve --writable)
  16 hosts: hand, cache file://         (reference) `nix copy --to file://DIR?…` here, then every
                                        host at once substitutes its system from the served DIR
                                        (trusting the key) and switches (xargs -P 16)
  16 hosts: hand, cache http://         (reference) the same, pushed across the link

Target (issue 12): with --cache served on the hosts' side, total ≤ 2 x T1 (the star needs ~16x).
In the file:// case the one push happens on the deployer's disk and never crosses the link (as
the issue's scenario has it); the http:// case is the whole story of a remote site, one copy
through the uplink included.

--quick: a 4 MiB shared path instead of 20 MiB, 1 round instead of 2 (ratios only indicative:
fixed costs weigh more against a shorter copy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common import (
    ENV,
    CommandFailed,
    HostSpec,
    Lab,
    build_systems,
    header,
    host_names,
    interleaved,
    main_guard,
    median,
    nixlift,
    parse_args,
    reps,
    run,
    say,
    spread,
    stage,
    table,
    timed,
    timed_json,
    write_network,
)

from nixlift_testbed import Sandbox
from nixlift_testbed.link import running, serve_http

HOSTS = 16
RATE = "10mbit"
PORT = 8080
TARGET = 2.0
NIX = ["nix", "--extra-experimental-features", "nix-command"]

T1 = "1 host: nix copy --to ssh-ng://"
ONE = "1 host: nixlift deploy"
STAR = f"{HOSTS} hosts: nixlift deploy (star)"
CACHE_FILE = f"{HOSTS} hosts: nixlift --cache file://"
CACHE_HTTP = f"{HOSTS} hosts: nixlift --cache http://"
HAND_FILE = f"{HOSTS} hosts: hand, cache file://"
HAND_HTTP = f"{HOSTS} hosts: hand, cache http://"
ONE_HOST = (T1, ONE)
#: cases whose cache is written here (file://) or uploaded across the link (http://)
FILE_CASES = (CACHE_FILE, HAND_FILE)
HTTP_CASES = (CACHE_HTTP, HAND_HTTP)

#: one host from the cache, by hand: bash fanout-one.sh CFG URL PUBLIC_KEY HOST SYSTEM
FANOUT_ONE_SH = r"""#!/bin/bash
# One host from a binary cache, by hand: substitute its system (trusting the cache's key for
# this one call), set the profile, switch.
set -euo pipefail
cfg=$1 url=$2 key=$3 host=$4 sys=$5
ssh -F "$cfg" "$host" "nix-store --realise $sys --option substituters '$url' \
  --option trusted-public-keys '$key' >/dev/null &&
  nix-env -p /nix/var/nix/profiles/system --set $sys && $sys/bin/switch-to-configuration switch"
"""


def body() -> int:
    args = parse_args(__doc__ or "")
    blob = 4 if args.quick else 20
    rounds = reps(args, default=2, quick=1)
    header(
        f"fanout: {HOSTS} hosts behind one {RATE} link, each needing the same {blob} MiB "
        "(random) path",
        args,
    )
    specs = {h: HostSpec(role=h, blob_mib=blob, blob_random=True) for h in host_names(HOSTS)}
    # nix here remembers for 30 days which paths a cache URL holds (its narinfo disk cache,
    # ~/.cache/nix): every case's cache is new and empty, but its URL (the link's service
    # address, a port) comes back in the next run, and a push would skip what the cache at that
    # URL held then.
    ENV["NIX_CONFIG"] += "narinfo-cache-positive-ttl = 0\nnarinfo-cache-negative-ttl = 0\n"
    help_text = run(nixlift("deploy", "--help"))
    has_cache = re.search(r"--cache[\s=]", help_text) is not None
    with Lab() as lab:
        with stage(f"building {HOSTS} systems here (not measured)"):
            systems = build_systems(write_network(lab.directory("build"), None, specs))
        size = run([*NIX, "path-info", "-S", systems["h1"]], env=ENV).split()[-1]
        say(f"  h1's closure: {int(size) / 2**20:.1f} MiB")
        key = lab.root / "cache.key"
        key.write_text(run([*NIX, "key", "generate-secret", "--key-name", "nlbench-fanout-1"]))
        public = run([*NIX, "key", "convert-secret-to-public"], stdin=key.read_text()).strip()
        fanout_one = lab.root / "fanout-one.sh"
        fanout_one.write_text(FANOUT_ONE_SH)

        current: dict[str, object] = {}
        notes: dict[str, list[str]] = {}

        def fresh(case: str, round_index: int) -> None:
            finish()
            sandbox = lab.sandbox(1 if case in ONE_HOST else HOSTS, shaped=RATE)
            scope = lab.enter(ExitStack())  # the cache server: closed by finish() or the Lab
            current.update(case=case, sandbox=sandbox, scope=scope)
            if case in FILE_CASES or case in HTTP_CASES:
                directory = lab.directory(f"cache-{sandbox.directory.name}")
                current["cache"] = directory
                # a port per case, so that no two live servers of a run share a URL
                port = PORT + len(list(lab.root.glob("cache-*")))
                server = _cache_server(case, sandbox, directory, port)
                current["url"] = scope.enter_context(server)

        def finish() -> None:
            scope, sandbox = current.pop("scope", None), current.pop("sandbox", None)
            if isinstance(scope, ExitStack):
                scope.close()
            if isinstance(sandbox, Sandbox):
                _check(sandbox, systems, str(current["case"]))
                lab.stop(sandbox.directory)
            current.clear()

        def sandbox_now() -> Sandbox:
            sandbox = current["sandbox"]
            assert isinstance(sandbox, Sandbox)
            return sandbox

        def network() -> Path:
            sandbox = sandbox_now()
            chosen = {h: specs[h] for h in sandbox.names}
            return write_network(
                lab.directory(f"net-{sandbox.directory.name}"), sandbox, chosen
            ).file

        def copy_one() -> float:
            env = {**ENV, "NIX_SSHOPTS": sandbox_now().nix_sshopts}
            argv = [*NIX, "copy", "--no-check-sigs", "--to", "ssh-ng://h1", systems["h1"]]
            return timed(argv, env=env)

        def nixlift_cache() -> float:
            url = str(current["url"])
            if current["case"] == CACHE_FILE:
                extra = ["--cache", f"file://{current['cache']}", "--cache-url", url]
            else:
                extra = ["--cache", url]
            argv = nixlift("deploy", network(), *extra, "--cache-key", key, "--json")
            seconds, doc = timed_json(argv)
            # a host that could not fetch was copied to from here (through the link): say so
            how = [str(h.get("cache")) for h in doc["hosts"]]
            fetched = sum(1 for h in how if h == "fetched")
            notes.setdefault(str(current["case"]), []).append(f"{fetched}/{len(how)} fetched")
            if fetched < len(how):
                say(f"  not fetched from the cache: {next(h for h in how if h != 'fetched')}")
            return seconds

        def hand_cache() -> float:
            url = str(current["url"])
            store = f"file://{current['cache']}" if current["case"] == HAND_FILE else url
            store += f"?compression=zstd&secret-key={key}"
            push = timed([*NIX, "copy", "--to", store, *systems.values()])
            lines = "".join(f"{h} {s}\n" for h, s in systems.items())
            cfg = str(sandbox_now().ssh_config)
            argv: list[str | Path] = ["xargs", "-P", str(HOSTS), "-n", "2", "bash", fanout_one]
            return push + timed([*argv, cfg, url, public], stdin=lines)

        cases: dict[str, Callable[[], float]] = {
            T1: copy_one,
            ONE: lambda: timed(nixlift("deploy", network())),
            HAND_FILE: hand_cache,
            HAND_HTTP: hand_cache,
        }
        if has_cache:
            cases[CACHE_FILE] = nixlift_cache
            cases[CACHE_HTTP] = nixlift_cache
        else:
            say("  nixlift deploy has no --cache: its cache cases are not available yet")
        with stage(f"{rounds} interleaved round(s), a fresh sandbox per case"):
            times = interleaved(rounds, cases, before_each=fresh)
        with stage(f"the star, once ({HOSTS} copies through the link)"):
            times.update(interleaved(1, {STAR: lambda: timed(nixlift("deploy", network()))}, fresh))
        finish()

    rows = [(name, median(t), spread(t), len(t)) for name, t in times.items()]
    print(table(("case", "median s", "min-max s", "runs"), rows))
    for case, said in notes.items():
        print(f"  {case}: hosts that fetched from the cache, per run: {', '.join(said)}")
    print()
    t1 = median(times[T1])
    print(f"T1, one host's copy through the link = {t1:.1f} s")
    for name, note in (
        (STAR, "context: a copy per host"),
        (CACHE_FILE, f"target ≤ {TARGET}"),
        (CACHE_HTTP, "context: the push crosses the link too"),
        (HAND_FILE, "reference: today's nix by hand"),
        (HAND_HTTP, "reference: today's nix by hand"),
        (ONE, "context"),
    ):
        if name not in times:
            print(f"RATIO {name} / T1 = not available yet (nixlift deploy has no --cache)")
            continue
        ratio = median(times[name]) / t1
        verdict = ("met" if ratio <= TARGET else "NOT met") if name == CACHE_FILE else ""
        print(f"RATIO {name} / T1 = {ratio:.2f}  ({note}{': ' + verdict if verdict else ''})")
    return 0


@contextmanager
def _cache_server(case: str, sandbox: Sandbox, directory: Path, port: int) -> Iterator[str]:
    """The cache's HTTP server on the hosts' side of the link; yields its URL. file:// cases:
    `nixlift cache serve` (read-only); http:// cases: the test bed's writable server."""
    link = sandbox.link
    assert link is not None
    if case in HTTP_CASES:
        with serve_http(link, directory, port, writable=True) as url:
            yield url
        return
    address = link.service_address
    argv = nixlift("cache", "serve", directory, "--listen", f"{address}:{port}")
    with running(link.enter(argv), (address, port)):
        yield f"http://{address}:{port}"


def _check(sandbox: Sandbox, systems: dict[str, str], case: str) -> None:
    """After a case: every host runs its system (the copy case: h1 has its system)."""
    if case == T1:
        if not sandbox.host("h1").path(systems["h1"]).exists():
            raise CommandFailed(f"{case}: h1 does not have its system")
        return
    wrong = [h.name for h in sandbox.hosts if h.readlink("/run/current-system") != systems[h.name]]
    if wrong:
        raise CommandFailed(f"after {case}: {', '.join(wrong)} do not run their systems")
    say(f"  checked: {len(sandbox.hosts)} host(s) run their systems")


if __name__ == "__main__":
    main_guard(body)
