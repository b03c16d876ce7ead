"""`nixlift plan` of an unchanged 10-host fleet against a no-op `nixlift deploy` of the same
fleet (each host its own system: its /etc/bench/role differs).

All hosts already run their systems (one first deploy, not measured). A plan evaluates, finds
the systems built, reads each host's state and tells; the no-op deploy evaluates, finds them
built, locks each host, copies nothing, activates again (alwaysActivate), records and unlocks.
A plan should cost no more than the deploy it previews: the target is plan / deploy ≤ 1.5. Both
run interleaved over several rounds; the medians and their ratio are printed.

--quick: 5 hosts and 2 rounds instead of 10 and 5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from common import (
    HostSpec,
    Lab,
    deploy_json,
    header,
    host_names,
    interleaved,
    main_guard,
    median,
    nixlift,
    parse_args,
    reps,
    spread,
    stage,
    table,
    timed,
    write_network,
)

TARGET = 1.5


def body() -> int:
    args = parse_args(__doc__ or "")
    count = 5 if args.quick else 10
    rounds = reps(args, default=5, quick=2)
    header(f"plan: plan vs no-op deploy of {count} unchanged hosts", args)
    with Lab() as lab:
        sandbox = lab.sandbox(count)
        net = write_network(
            lab.directory("net"), sandbox, {h: HostSpec(role=h) for h in host_names(count)}
        )
        with stage("build and first deploy of every host (not measured)"):
            deploy_json(net)
        cases: dict[str, Callable[[], float]] = {
            "nixlift plan": functools.partial(timed, nixlift("plan", net.file)),
            "nixlift plan --json": functools.partial(timed, nixlift("plan", net.file, "--json")),
            "nixlift deploy (no-op)": functools.partial(timed, nixlift("deploy", net.file)),
        }
        with stage("warm-up (not measured)"):
            timed(nixlift("plan", net.file))
            timed(nixlift("deploy", net.file))
        with stage(f"{rounds} interleaved rounds"):
            times = interleaved(rounds, cases)

    rows = [(name, median(t), spread(t), len(t)) for name, t in times.items()]
    print(table(("case", "median s", "min-max s", "runs"), rows))
    print()
    deploy = times["nixlift deploy (no-op)"]
    plan = times["nixlift plan"]
    ratio = median(plan) / median(deploy)
    per_round = median([p / d for p, d in zip(plan, deploy, strict=True)])
    met = "met" if ratio <= TARGET else "NOT met"
    print(
        f"RATIO plan / no-op deploy, {count} hosts (medians) = {ratio:.2f}  "
        f"(target ≤ {TARGET}: {met})"
    )
    print(f"RATIO plan / no-op deploy (median per round)    = {per_round:.2f}")
    return 0


if __name__ == "__main__":
    main_guard(body)
