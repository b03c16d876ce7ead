"""No-op redeploy of 1, 10 and 50 hosts (each host its own system: its /etc/bench/role differs).

All hosts already run their systems (one first deploy of the largest network, not measured).
Each count is deployed with the default `--parallel 10` and with `--parallel 0` (no limit),
interleaved over several rounds; the medians and t(50)/t(1) are printed (target ≤ 2.0).

Two reference rows show what the hosts' side alone costs on this machine: the same no-op done by
hand for the largest count, `xargs -P 10` over `deploy-one.sh` (nix-copy-closure + ssh set
profile + switch), the systems already known, no evaluation; and only the SSH handshakes, `ssh
hN true` to every host at once (a floor for any tool that logs in to every host). Sandbox hosts
share this machine's two cores with nixlift, so every sshd handshake and activation script
competes with it.

--quick: counts 1, 5, 10 and 2 rounds instead of 1, 10, 50 and 5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from common import (
    HostSpec,
    Lab,
    build_systems,
    deploy_json,
    hand_deploy,
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

TARGET = 2.0
PARALLEL = ("10", "0")


def body() -> int:
    args = parse_args(__doc__ or "")
    counts = (1, 5, 10) if args.quick else (1, 10, 50)
    rounds = reps(args, default=5, quick=2)
    largest = counts[-1]
    header(f"scale: no-op redeploy of {', '.join(map(str, counts))} hosts", args)
    with Lab() as lab:
        sandbox = lab.sandbox(largest)
        nets = {
            n: write_network(
                lab.directory(f"net{n}"), sandbox, {h: HostSpec(role=h) for h in host_names(n)}
            )
            for n in counts
        }
        with stage("build and first deploy of every host (not measured)"):
            systems = build_systems(nets[largest])
            deploy_json(nets[largest])

        cases: dict[str, Callable[[], float]] = {}
        for n in counts:
            for parallel in PARALLEL:
                cases[f"nixlift {n} --parallel {parallel}"] = functools.partial(
                    timed, nixlift("deploy", nets[n].file, "--parallel", parallel)
                )
        reference = f"hand {largest}, xargs -P 10 (reference)"
        cases[reference] = lambda: hand_deploy(lab, sandbox, systems, 10)
        handshakes = f"ssh hN true x{largest}, xargs -P {largest} (floor)"
        names = "".join(f"{h}\n" for h in host_names(largest))
        cases[handshakes] = functools.partial(
            timed,
            [
                "xargs",
                "-P",
                str(largest),
                "-I",
                "{}",
                "ssh",
                "-F",
                str(sandbox.ssh_config),
                "{}",
                "true",
            ],
            stdin=names,
        )
        with stage("warm-up (not measured)"):
            timed(nixlift("deploy", nets[counts[0]].file))
        with stage(f"{rounds} interleaved rounds"):
            times = interleaved(rounds, cases)

    rows = []
    for n in counts:
        for parallel in PARALLEL:
            t = times[f"nixlift {n} --parallel {parallel}"]
            per_host = round(median(t) / n * 1000)
            rows.append((n, f"--parallel {parallel}", median(t), spread(t), per_host))
    t = times[reference]
    rows.append(
        (
            largest,
            "hand xargs -P 10 (ref.)",
            median(t),
            spread(t),
            round(median(t) / largest * 1000),
        )
    )
    t = times[handshakes]
    rows.append(
        (
            largest,
            f"only ssh handshakes, -P {largest}",
            median(t),
            spread(t),
            round(median(t) / largest * 1000),
        )
    )
    print(table(("hosts", "how", "median s", "min-max s", "ms/host"), rows))
    print()
    for parallel in PARALLEL:
        t1 = median(times[f"nixlift {counts[0]} --parallel {parallel}"])
        tn = median(times[f"nixlift {largest} --parallel {parallel}"])
        met = "met" if tn / t1 <= TARGET else "NOT met"
        default = " (default)" if parallel == "10" else ""
        print(
            f"RATIO t({largest})/t(1), --parallel {parallel}{default} = {tn / t1:.2f}  "
            f"(target ≤ {TARGET:.1f}: {met})"
        )
    for parallel in PARALLEL:
        tn = median(times[f"nixlift {largest} --parallel {parallel}"])
        print(
            f"RATIO nixlift {largest} --parallel {parallel} / hand reference = "
            f"{tn / median(times[reference]):.2f}"
        )
    return 0


if __name__ == "__main__":
    main_guard(body)
