"""200 hosts: a first deploy, then a no-op redeploy, each in one nixlift run; report the times.

The systems are built first (not measured; 50 machines at a time with `--on`). Then, with the
default --parallel 10:

  first deploy     nixlift deploy NET   (every host copies and activates its system)
  no-op redeploy   nixlift deploy NET   (nothing to copy; every host activates again)

If a one-run deploy fails, its failure is reported and the hosts are deployed 50 at a time
(`--on h1,…,h50` …) instead, so the no-op redeploy still has deployed hosts to run against; the
same no-op redeploy in batches of 50 is always timed too, for comparison. Sandbox hosts share the
machine's two cores with nixlift: 200 sshd processes and activation scripts compete with it.

--quick: 50 hosts instead of 200.
"""

from __future__ import annotations

import time

from common import (
    CommandFailed,
    HostSpec,
    Lab,
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
    stage,
    table,
    timed,
    write_network,
)

from nixlift_testbed import Sandbox

BATCH = 50


def body() -> int:
    args = parse_args(__doc__ or "")
    count = 50 if args.quick else 200
    header(f"many_hosts: first deploy and no-op redeploy of {count} hosts", args)
    rows: list[tuple[str, float, str]] = []
    with Lab() as lab:
        begun = time.perf_counter()
        sandbox = lab.sandbox(count)
        rows.append((f"(context) sandbox up, {count} hosts", time.perf_counter() - begun, "ok"))
        net = write_network(
            lab.directory("net"), sandbox, {h: HostSpec(role=h) for h in host_names(count)}
        )
        with stage(f"building {count} systems, {BATCH} at a time (not measured)"):
            begun = time.perf_counter()
            systems = build_in_batches(net, BATCH)
            rows.append(
                (f"(context) nixlift build, {BATCH} at a time", time.perf_counter() - begun, "ok")
            )

        with stage("first deploy, one run"):
            seconds, first_error = attempt(nixlift("deploy", net.file))
            rows.append(("first deploy, one run", seconds, _result(first_error)))
        if first_error is not None:
            with stage(f"first deploy, {BATCH} at a time (the one run failed)"):
                begun = time.perf_counter()
                deploy_in_batches(net, BATCH)
                rows.append(
                    (
                        f"first deploy, {BATCH} at a time with --on",
                        time.perf_counter() - begun,
                        "ok",
                    )
                )
        _check_running(sandbox, systems)

        with stage("no-op redeploy, one run"):
            seconds, noop_error = attempt(nixlift("deploy", net.file))
            rows.append(("no-op redeploy, one run", seconds, _result(noop_error)))
        with stage(f"no-op redeploy, {BATCH} at a time"):
            total = sum(
                timed(nixlift("deploy", net.file, *on(names)))
                for names in batches(net.names, BATCH)
            )
            rows.append((f"no-op redeploy, {BATCH} at a time with --on", total, "ok"))
        _check_running(sandbox, systems)

    print(table(("case", "seconds", "result"), rows))
    print()
    if noop_error is not None:
        print(f"{count}-host no-op redeploy in one run: FAILED: {noop_error}")
        return 1
    noop = next(s for c, s, _ in rows if c == "no-op redeploy, one run")
    print(
        f"{count}-host no-op redeploy in one run: completed in {noop:.1f} s "
        f"({noop / count * 1000:.0f} ms per host)"
    )
    return 0


def _result(error: str | None) -> str:
    return "ok" if error is None else f"FAILED: {error}"


def _check_running(sandbox: Sandbox, systems: dict[str, str]) -> None:
    wrong = [h.name for h in sandbox.hosts if h.readlink("/run/current-system") != systems[h.name]]
    if wrong:
        raise CommandFailed(
            f"{len(wrong)} host(s) do not run their systems, e.g. {', '.join(wrong[:5])}"
        )


if __name__ == "__main__":
    main_guard(body)
