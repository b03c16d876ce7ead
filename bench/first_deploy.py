"""First deploy of 20 hosts to clean stores: nixlift vs the hand-run sequence, serial and xargs.

Each host's system differs and holds ~200 small store paths of its own (writeText files named in
/etc/bench/manifest) plus one 20 MiB path shared by all hosts (/etc/bench/blob, built once).
Builds are not measured: every system is built here first (`nixlift build`). Each measured case
gets a fresh sandbox (empty host stores), so every case copies everything:

  nixlift         nixlift deploy NET  (default --parallel 10; includes its evaluation)
  hand serial     deploy-one.sh host after host: nix-copy-closure, ssh set profile + switch
  hand xargs -P   the same deploy-one.sh, `xargs -P 10` over the hosts

Cases are interleaved over rounds (order rotated); medians and ratios are printed. A context row
times `nixlift build NET` on the already built network: evaluation and the realise check, the
part of nixlift's time that the hand-run sequence (given the built paths) does not do.

--quick: 5 hosts and 1 round instead of 20 and 3.
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
    run,
    say,
    spread,
    stage,
    table,
    timed,
    write_network,
)

from nixlift_testbed import Sandbox

SMALL_PATHS = 200
BLOB_MIB = 20
PARALLEL = 10


def body() -> int:
    args = parse_args(__doc__ or "")
    count = 5 if args.quick else 20
    rounds = reps(args, default=3, quick=1)
    header(
        f"first_deploy: {count} hosts, {SMALL_PATHS} own paths each + one shared "
        f"{BLOB_MIB} MiB path, to clean host stores",
        args,
    )
    specs = {
        h: HostSpec(role=h, small_paths=SMALL_PATHS, blob_mib=BLOB_MIB) for h in host_names(count)
    }
    with Lab() as lab:
        # Where the hosts are does not enter the systems: build once, deploy to many sandboxes.
        built_net = write_network(lab.directory("build"), None, specs)
        with stage(f"building {count} systems here (not measured; cached after the first run)"):
            systems = build_systems(built_net)
        closure = run(["nix-store", "-qR", *systems.values()]).split()
        say(
            f"  {len(closure)} store paths in all, "
            f"{len(run(['nix-store', '-qR', systems['h1']]).split())} per host"
        )

        current: dict[str, Sandbox] = {}

        def fresh(case: str, round_index: int) -> None:
            """Before each case: the previous case's result checked and its sandbox stopped;
            a new sandbox (empty stores)."""
            finish()
            current["sb"] = lab.sandbox(count)

        def finish() -> None:
            sb = current.pop("sb", None)
            if sb is not None:
                _check_deployed(sb, systems)
                lab.stop(sb.directory)

        def net_file() -> str:
            sb = current["sb"]
            return str(write_network(lab.directory(f"net-{sb.directory.name}"), sb, specs).file)

        cases: dict[str, Callable[[], float]] = {
            "nixlift deploy": lambda: timed(nixlift("deploy", net_file())),
            "hand serial": lambda: hand_deploy(lab, current["sb"], systems, None),
            f"hand xargs -P {PARALLEL}": lambda: hand_deploy(lab, current["sb"], systems, PARALLEL),
        }
        with stage(f"{rounds} interleaved round(s), a fresh sandbox per case"):
            times = interleaved(rounds, cases, before_each=fresh)
        finish()
        with stage("context: nixlift build on the built network (eval + realise check)"):
            build_times = [timed(nixlift("build", built_net.file)) for _ in range(3)]

    rows = [(name, median(t), spread(t), len(t)) for name, t in times.items()]
    rows.append(
        (
            "(context) nixlift build, all built",
            median(build_times),
            spread(build_times),
            len(build_times),
        )
    )
    print(table(("case", "median s", "min-max s", "runs"), rows))
    print()
    ours = median(times["nixlift deploy"])
    print(f"RATIO nixlift / hand serial            = {ours / median(times['hand serial']):.2f}")
    print(
        f"RATIO nixlift / hand xargs -P {PARALLEL}       = "
        f"{ours / median(times[f'hand xargs -P {PARALLEL}']):.2f}"
    )
    print(
        f"RATIO (nixlift - its eval) / xargs -P {PARALLEL} = "
        f"{(ours - median(build_times)) / median(times[f'hand xargs -P {PARALLEL}']):.2f}"
        "  (nixlift build's time taken off)"
    )
    return 0


def _check_deployed(sandbox: Sandbox, systems: dict[str, str]) -> None:
    """Every host runs its system (a case that deployed nothing would look fast)."""
    wrong = [h.name for h in sandbox.hosts if h.readlink("/run/current-system") != systems[h.name]]
    if wrong:
        raise CommandFailed(f"after a case, {', '.join(wrong)} do not run their systems")


if __name__ == "__main__":
    main_guard(body)
