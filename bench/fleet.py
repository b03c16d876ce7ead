"""A fleet of 10 hosts: nixlift against a hand-run parallel loop, first deploy and no-op redeploy.

The hand-run loop is what a person scripts without a tool, all hosts at once (`xargs -P 10`):
per host `nix-copy-closure --to HOST SYSTEM`, then `ssh HOST "nix-env -p …/system --set SYSTEM
&& SYSTEM/bin/switch-to-configuration switch"` (bench/common.py DEPLOY_ONE_SH). It is given
the built systems (no evaluation). NixOps 2 was measured within 10 % of it on these hosts.
nixlift runs with its default safety (magic rollback, host lock, history) and `--parallel 10`.

Each host's system differs (its role) and holds 20 small store paths of its own. The systems
are built first (not measured).

  first deploy     prebuilt systems to empty host stores: a fresh sandbox per case (started
                   outside the timed part), checked afterwards (every host runs its system)
  no-op redeploy   every host already runs its system; both sides activate it again

Targets (issue 12): first deploy nixlift / loop ≤ 1.1; no-op redeploy nixlift / loop ≤ 0.8.

--quick: 1 round of the first deploy and 3 of the no-op (instead of 3 and 7).
"""

from __future__ import annotations

from collections.abc import Callable

from common import (
    CommandFailed,
    HostSpec,
    Lab,
    build_systems,
    hand_deploy,
    header,
    host_names,
    interleaved,
    main_guard,
    median,
    nixlift,
    parse_args,
    reps,
    say,
    spread,
    stage,
    table,
    timed,
    write_network,
)

from nixlift_testbed import Sandbox

HOSTS = 10
SMALL_PATHS = 20
FIRST_TARGET = 1.1
NOOP_TARGET = 0.8


def body() -> int:
    args = parse_args(__doc__ or "")
    first_rounds = reps(args, default=3, quick=1)
    noop_rounds = reps(args, default=7, quick=3)
    header(f"fleet: {HOSTS} hosts, nixlift vs a hand-run parallel loop (xargs -P {HOSTS})", args)
    specs = {h: HostSpec(role=h, small_paths=SMALL_PATHS) for h in host_names(HOSTS)}
    with Lab() as lab:
        with stage(f"building {HOSTS} systems here (not measured)"):
            systems = build_systems(write_network(lab.directory("build"), None, specs))

        current: dict[str, Sandbox] = {}

        def fresh(case: str, round_index: int) -> None:
            finish()
            current["sb"] = lab.sandbox(HOSTS)

        def finish() -> None:
            sandbox = current.pop("sb", None)
            if sandbox is not None:
                _check_running(sandbox, systems)
                lab.stop(sandbox.directory)

        def net_file(sandbox: Sandbox) -> str:
            directory = lab.directory(f"net-{sandbox.directory.name}")
            return str(write_network(directory, sandbox, specs).file)

        first_cases: dict[str, Callable[[], float]] = {
            "nixlift deploy": lambda: timed(nixlift("deploy", net_file(current["sb"]))),
            f"hand loop, xargs -P {HOSTS}": lambda: hand_deploy(lab, current["sb"], systems, HOSTS),
        }
        with stage(f"first deploy: {first_rounds} interleaved round(s), a fresh sandbox per case"):
            first = interleaved(first_rounds, first_cases, before_each=fresh)
        finish()

        sandbox = lab.sandbox(HOSTS)
        net = net_file(sandbox)
        with stage("no-op redeploy: first deploy and a warm-up round (not measured)"):
            timed(nixlift("deploy", net))
            timed(nixlift("deploy", net))
            hand_deploy(lab, sandbox, systems, HOSTS)
        noop_cases: dict[str, Callable[[], float]] = {
            "nixlift deploy": lambda: timed(nixlift("deploy", net)),
            f"hand loop, xargs -P {HOSTS}": lambda: hand_deploy(lab, sandbox, systems, HOSTS),
        }
        with stage(f"no-op redeploy: {noop_rounds} interleaved rounds"):
            noop = interleaved(noop_rounds, noop_cases)
        _check_running(sandbox, systems)

    rows = [("first deploy", n, median(t), spread(t), len(t)) for n, t in first.items()]
    rows += [("no-op redeploy", n, median(t), spread(t), len(t)) for n, t in noop.items()]
    print(table(("deploy", "how", "median s", "min-max s", "runs"), rows))
    print()
    for what, times, target in (
        ("first deploy  ", first, FIRST_TARGET),
        ("no-op redeploy", noop, NOOP_TARGET),
    ):
        ours, theirs = times["nixlift deploy"], times[f"hand loop, xargs -P {HOSTS}"]
        ratio = median(ours) / median(theirs)
        per_round = median([a / b for a, b in zip(ours, theirs, strict=True)])
        verdict = "met" if ratio <= target else "NOT met"
        print(
            f"RATIO {what} nixlift / hand loop = {ratio:.2f}  (target ≤ {target}: {verdict}; "
            f"median per round {per_round:.2f})"
        )
    return 0


def _check_running(sandbox: Sandbox, systems: dict[str, str]) -> None:
    """Every host runs its system (a case that deployed nothing would look fast)."""
    wrong = [h.name for h in sandbox.hosts if h.readlink("/run/current-system") != systems[h.name]]
    if wrong:
        raise CommandFailed(f"after a case, {', '.join(wrong)} do not run their systems")
    say(f"  checked: all {len(systems)} hosts run their systems")


if __name__ == "__main__":
    main_guard(body)
