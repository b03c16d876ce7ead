"""200 hosts: a first deploy, then no-op redeploys of 100 and of 200 hosts, each in one nixlift
run; report the times and the nixlift process's peak memory.

The systems are built first (not measured; 50 machines at a time with `--on`). Then, with the
default --parallel 10:

  first deploy           nixlift deploy NET      (every host copies and activates its system)
  no-op redeploy, 100    nixlift deploy NET100   (a network of h1…h100 only; nothing to copy,
                                                 every host activates again): the issue's case
  no-op redeploy, 200    nixlift deploy NET

The no-op runs are timed with the peak resident set of the nixlift process itself (VmHWM read
every 20 ms; its nix and ssh children are not counted), as bench/memory.py does.

If a one-run deploy fails, its failure is reported and the hosts are deployed 50 at a time
(`--on h1,…,h50` …) instead, so the no-op redeploy still has deployed hosts to run against; the
same no-op redeploy in batches of 50 is always timed too, for comparison. Sandbox hosts share the
machine's two cores with nixlift: 200 sshd processes and activation scripts compete with it.

--quick: 50 hosts instead of 200 (and the "100-host" no-op is of those 50).
"""

from __future__ import annotations

import time

from common import (
    CommandFailed,
    HostSpec,
    Lab,
    Peak,
    attempt,
    batches,
    build_in_batches,
    deploy_in_batches,
    header,
    host_names,
    main_guard,
    nixlift,
    on,
    parse_args,
    peak_rss,
    stage,
    table,
    timed,
    write_network,
)

from nixlift_testbed import Sandbox

BATCH = 50
#: the issue's no-op redeploy: 100 hosts
SMALL = 100


def body() -> int:
    args = parse_args(__doc__ or "")
    count = 50 if args.quick else 200
    small = min(SMALL, count)
    header(f"many_hosts: first deploy and no-op redeploys of {small} and {count} hosts", args)
    rows: list[tuple[str, float, str, str]] = []
    with Lab() as lab:
        begun = time.perf_counter()
        sandbox = lab.sandbox(count)
        rows.append((f"(context) sandbox up, {count} hosts", time.perf_counter() - begun, "", "ok"))
        net = write_network(
            lab.directory("net"), sandbox, {h: HostSpec(role=h) for h in host_names(count)}
        )
        net_small = write_network(
            lab.directory("net-small"), sandbox, {h: HostSpec(role=h) for h in host_names(small)}
        )
        with stage(f"building {count} systems, {BATCH} at a time (not measured)"):
            begun = time.perf_counter()
            systems = build_in_batches(net, BATCH)
            rows.append(
                (
                    f"(context) nixlift build, {BATCH} at a time",
                    time.perf_counter() - begun,
                    "",
                    "ok",
                )
            )

        with stage("first deploy, one run"):
            seconds, first_error = attempt(nixlift("deploy", net.file))
            rows.append(("first deploy, one run", seconds, "", _result(first_error)))
        if first_error is not None:
            with stage(f"first deploy, {BATCH} at a time (the one run failed)"):
                begun = time.perf_counter()
                deploy_in_batches(net, BATCH)
                rows.append(
                    (
                        f"first deploy, {BATCH} at a time with --on",
                        time.perf_counter() - begun,
                        "",
                        "ok",
                    )
                )
        _check_running(sandbox, systems)

        with stage(f"no-op redeploy of {small} hosts, one run"):
            noop_small = peak_rss(nixlift("deploy", net_small.file))
            rows.append(_peak_row(f"no-op redeploy of {small} hosts, one run", noop_small))
        with stage(f"no-op redeploy of {count} hosts, one run"):
            noop = peak_rss(nixlift("deploy", net.file))
            rows.append(_peak_row(f"no-op redeploy of {count} hosts, one run", noop))
        with stage(f"no-op redeploy, {BATCH} at a time"):
            total = sum(
                timed(nixlift("deploy", net.file, *on(names)))
                for names in batches(net.names, BATCH)
            )
            rows.append((f"no-op redeploy, {BATCH} at a time with --on", total, "", "ok"))
        _check_running(sandbox, systems)

    print(table(("case", "seconds", "peak MB", "result"), rows))
    print()
    failed = False
    for n, peak in ((small, noop_small), (count, noop)):
        if peak.returncode != 0:
            print(f"{n}-host no-op redeploy in one run: FAILED: {peak.error}")
            failed = True
            continue
        print(
            f"{n}-host no-op redeploy in one run: {peak.seconds:.1f} s "
            f"({peak.seconds / n * 1000:.0f} ms per host), peak RSS of nixlift {peak.mb:.1f} MB"
        )
    return 1 if failed else 0


def _result(error: str | None) -> str:
    return "ok" if error is None else f"FAILED: {error}"


def _peak_row(case: str, peak: Peak) -> tuple[str, float, str, str]:
    result = "ok" if peak.returncode == 0 else f"FAILED: {peak.error}"
    return (case, peak.seconds, f"{peak.mb:.1f}", result)


def _check_running(sandbox: Sandbox, systems: dict[str, str]) -> None:
    wrong = [h.name for h in sandbox.hosts if h.readlink("/run/current-system") != systems[h.name]]
    if wrong:
        raise CommandFailed(
            f"{len(wrong)} host(s) do not run their systems, e.g. {', '.join(wrong[:5])}"
        )


if __name__ == "__main__":
    main_guard(body)
