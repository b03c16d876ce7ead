"""Peak RSS of the nixlift process itself during a 100-host no-op deploy (target ≤ 100 MB).

nixlift runs as a child (subprocess.Popen); its /proc/PID/status is read every ~20 ms until it
exits, keeping the last VmHWM seen: the kernel's high-water mark of that process's own resident
set (its children, nix and ssh, are separate processes and not counted). 1- and 50-host no-op
deploys are measured the same way, to show the baseline (interpreter + imports) and the growth
per host; the 100-host deploy also once with --parallel 0. The hosts are set up (built, first
deployed) 50 at a time with `--on`.

--quick: 1 and 50 hosts, 1 repetition (instead of 1, 50 and 100 hosts, 2 repetitions); the
target is for 100 hosts, so a quick run only shows the trend.
"""

from __future__ import annotations

from common import (
    HostSpec,
    Lab,
    Peak,
    build_in_batches,
    deploy_in_batches,
    header,
    host_names,
    main_guard,
    nixlift,
    parse_args,
    peak_rss,
    reps,
    say,
    stage,
    table,
    write_network,
)

TARGET_MB = 100.0
HOSTS = 100


def body() -> int:
    args = parse_args(__doc__ or "")
    rounds = reps(args, default=2, quick=1)
    hosts = 50 if args.quick else HOSTS
    header(f"memory: peak RSS (VmHWM) of the nixlift process, {hosts}-host no-op deploy", args)
    with Lab() as lab:
        sandbox = lab.sandbox(hosts)
        counts = (1, hosts) if args.quick else (1, 50, hosts)
        nets = {
            n: write_network(
                lab.directory(f"net{n}"), sandbox, {h: HostSpec(role=h) for h in host_names(n)}
            )
            for n in counts
        }
        with stage(f"build and first deploy of {hosts} hosts, 50 at a time (not measured)"):
            build_in_batches(nets[hosts])
            deploy_in_batches(nets[hosts])
        cases = [(_label(n), n, "10") for n in counts]
        results: list[tuple[str, str, int, Peak]] = []
        for r in range(rounds):
            # no limit: slow on two cores (~2x), so once
            extra = [(_label(hosts), hosts, "0")] if r == 0 else []
            for label, n, parallel in cases + extra:
                peak = peak_rss(nixlift("deploy", nets[n].file, "--parallel", parallel))
                say(
                    f"  round {r + 1}/{rounds} {label} --parallel {parallel}: "
                    f"{peak.mb:.1f} MB in {peak.seconds:.2f} s ({peak.polls} polls)"
                    + (f", FAILED: {peak.error}" if peak.returncode else "")
                )
                results.append((label, parallel, r + 1, peak))

    rows = [
        (
            label,
            f"--parallel {parallel}",
            run,
            round(p.mb, 1),
            p.seconds,
            "ok" if p.returncode == 0 else f"FAILED (exit {p.returncode})",
        )
        for label, parallel, run, p in results
    ]
    print(table(("deploy", "how", "run", "VmHWM MB", "seconds", "result"), rows))
    print()
    target = [p for label, _, _, p in results if label == _label(hosts)]
    fifty = [p.mb for label, _, _, p in results if label == "50 hosts" and p.returncode == 0]
    one = [p.mb for label, _, _, p in results if label == "1 host" and p.returncode == 0]
    if one and fifty:
        print(
            f"growth 1 → 50 hosts = {(max(fifty) - max(one)) / 49 * 1024:.0f} KiB per host "
            f"({max(one):.1f} MB → {max(fifty):.1f} MB)"
        )
    for label, parallel, run, p in results:
        if p.returncode != 0:
            print(f"  {label} --parallel {parallel}, run {run}: {p.error}")
    failed = [p for p in target if p.returncode != 0]
    if failed:
        print(
            f"PEAK RSS of nixlift, {hosts} hosts: NOT MEASURED, the deploy failed: "
            f"{failed[0].error}"
        )
        print(f"  (peak until it failed: {max(p.mb for p in failed):.1f} MB)")
        return 1
    worst = max(p.mb for p in target)
    verdict = "met" if worst <= TARGET_MB else "NOT met"
    if hosts != HOSTS:
        verdict = f"{verdict} at {hosts} hosts; the target is for {HOSTS}: run without --quick"
    print(
        f"PEAK RSS of nixlift, {hosts} hosts (max over runs) = {worst:.1f} MB  "
        f"(target ≤ {TARGET_MB:.0f} MB: {verdict})"
    )
    return 0


def _label(n: int) -> str:
    return "1 host" if n == 1 else f"{n} hosts"


if __name__ == "__main__":
    main_guard(body)
