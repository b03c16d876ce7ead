"""Copy of a ~200-path closure over a link with 50 ms of round-trip time: nixlift vs nix by hand.

One sandbox host behind a delay proxy (`nixlift_testbed.proxy`: every chunk delayed 25 ms each
way, a new connection one round trip more). Its system holds 200 small store paths of its own
(writeText files; ~207 paths in the closure), built here first (not measured). Every case gets
a fresh host (empty store) and a fresh proxy, started outside the timed part, and is checked
afterwards (the host has the whole closure):

  nixlift deploy NET push      start-up, evaluation, connection, lock and probe, its copy
                               (ssh-ng, batched), nothing activated
  nix copy --to ssh-ng://      by hand, the batched protocol: the floor
  nix-copy-closure             (context) by hand, the legacy protocol: a round trip per path
  nix copy --to ssh://         (context) the same legacy protocol through nix copy

The network reaches the host as a user would reach a distant machine: deployment.targetHost and
targetPort are the proxy's, sshOptions name the sandbox's ssh config and the host's known_hosts
name (-o HostKeyAlias=…); the hand-runs get the same options through NIX_SSHOPTS.

Target (issue 12): nixlift / `nix copy --to ssh-ng://` ≤ 1.2, whole command against whole
command. A second ratio takes only nixlift's copy phase (its `--json` durations).

--quick: 1 round instead of 3.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from common import (
    ENV,
    CommandFailed,
    HostSpec,
    Lab,
    build_systems,
    header,
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
from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy, deployment, ssh_options

RTT = 0.050
SMALL_PATHS = 200
TARGET = 1.2
NIXLIFT = "nixlift deploy push"
SSH_NG = "nix copy --to ssh-ng://"
LEGACY = "nix-copy-closure"
SSH = "nix copy --to ssh://"


def body() -> int:
    args = parse_args(__doc__ or "")
    rounds = reps(args, default=3, quick=1)
    header(
        f"latency_copy: a {SMALL_PATHS}-path closure through a {RTT * 1000:.0f} ms RTT proxy, "
        "to an empty host store",
        args,
    )
    spec = {"h1": HostSpec(role="latency", small_paths=SMALL_PATHS)}
    with Lab() as lab:
        with stage("building the system here (not measured)"):
            system = build_systems(write_network(lab.directory("build"), None, spec))["h1"]
        closure = run(["nix-store", "-qR", system]).split()
        say(f"  {len(closure)} store paths in the closure")

        current: dict[str, object] = {}
        copy_phase: list[float] = []

        def fresh(case: str, round_index: int) -> None:
            """Before each case: the previous case checked, a new host and a new proxy."""
            finish()
            sandbox = lab.sandbox(1)
            host = sandbox.host("h1")
            scope = lab.enter(ExitStack())  # closed by finish(), or by the Lab on failure
            proxy = scope.enter_context(in_thread(DelayProxy((host.address, host.port), rtt=RTT)))
            current.update(sandbox=sandbox, proxy=proxy, scope=scope)

        def finish() -> None:
            sandbox = current.pop("sandbox", None)
            proxy = current.pop("proxy", None)
            scope = current.pop("scope", None)
            if isinstance(scope, ExitStack):
                scope.close()
            if isinstance(sandbox, Sandbox) and isinstance(proxy, DelayProxy):
                missing = [p for p in closure if not sandbox.host("h1").path(p).exists()]
                if missing:
                    raise CommandFailed(f"after a case, the host lacks {len(missing)} path(s)")
                say(f"    proxy: {proxy.stats.summary()}")
                lab.stop(sandbox.directory)

        def target() -> tuple[Sandbox, DelayProxy]:
            sandbox, proxy = current["sandbox"], current["proxy"]
            assert isinstance(sandbox, Sandbox) and isinstance(proxy, DelayProxy)
            return sandbox, proxy

        def hand(argv: list[str]) -> float:
            sandbox, proxy = target()
            options = " ".join([*ssh_options(sandbox, "h1"), "-p", str(proxy.address[1])])
            return timed([*argv, system], env={**ENV, "NIX_SSHOPTS": options})

        def with_nixlift() -> float:
            sandbox, proxy = target()
            net = write_network(
                lab.directory(f"net-{sandbox.directory.name}"),
                sandbox,
                spec,
                deployment(sandbox, "h1", proxy.address),
            )
            seconds, doc = timed_json(nixlift("deploy", net.file, "push", "--json"))
            durations = doc["hosts"][0].get("durations", {})
            copy_phase.append(float(durations.get("copy", float("nan"))))
            return seconds

        def destination(scheme: str) -> str:
            return f"{scheme}://root@{target()[1].address[0]}"

        nix_copy = ["nix", "--extra-experimental-features", "nix-command", "copy"]
        cases: dict[str, Callable[[], float]] = {
            NIXLIFT: with_nixlift,
            SSH_NG: lambda: hand([*nix_copy, "--no-check-sigs", "--to", destination("ssh-ng")]),
            LEGACY: lambda: hand(["nix-copy-closure", "--to", f"root@{target()[1].address[0]}"]),
            SSH: lambda: hand([*nix_copy, "--no-check-sigs", "--to", destination("ssh")]),
        }
        with stage(f"{rounds} interleaved round(s), a fresh host and proxy per case"):
            times = interleaved(rounds, cases, before_each=fresh)
        finish()

    rows = [(name, median(t), spread(t), len(t)) for name, t in times.items()]
    rows.append(("(nixlift's copy phase, --json)", median(copy_phase), spread(copy_phase), rounds))
    print(table(("case", "median s", "min-max s", "runs"), rows))
    print()
    floor = median(times[SSH_NG])
    ratio = median(times[NIXLIFT]) / floor
    per_round = median([a / b for a, b in zip(times[NIXLIFT], times[SSH_NG], strict=True)])
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"RATIO nixlift push / nix copy ssh-ng  = {ratio:.2f}  (target ≤ {TARGET}: {verdict})")
    print(f"RATIO the same, median per round      = {per_round:.2f}")
    print(f"RATIO nixlift's copy phase / ssh-ng   = {median(copy_phase) / floor:.2f}")
    print(f"RATIO nix-copy-closure / ssh-ng       = {median(times[LEGACY]) / floor:.2f}  (context)")
    print(f"RATIO nix copy ssh:// / ssh-ng        = {median(times[SSH]) / floor:.2f}  (context)")
    return 0


if __name__ == "__main__":
    main_guard(body)
