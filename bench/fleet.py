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

--rtt MS: every host behind a delay proxy of its own (nixlift_testbed.proxy) with that round-trip
time, as servers abroad or a fleet on Wi-Fi are; the hand loop reaches them through an ssh config
naming the proxies. On this machine the hosts' sshd and activations share its two cores with the
deployer, so without --rtt the benchmark mostly measures CPU; with it, round trips, as on a real
distant fleet: the hand loop logs in twice per host and copies with nix's legacy protocol (a
round trip per path), nixlift logs in once (plus magic rollback's confirmation on a changed host)
and copies with ssh-ng. bench/fleet_far.py is this with --rtt 50.
"""

from __future__ import annotations

from collections.abc import Callable

from common import (
    CommandFailed,
    CpuMeter,
    HostSpec,
    Lab,
    Proxied,
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


class Target:
    """A sandbox of HOSTS hosts, each behind a proxy of its own with --rtt: how nixlift's network
    and the hand loop reach them."""

    def __init__(self, lab: Lab, rtt_ms: float) -> None:
        self.sandbox = lab.sandbox(HOSTS)
        self.proxied = Proxied(lab, self.sandbox, rtt_ms / 1000) if rtt_ms else None

    def net_file(self, lab: Lab, specs: dict[str, HostSpec]) -> str:
        directory = lab.directory(f"net-{self.sandbox.directory.name}")
        through = self.proxied.deployment if self.proxied else None
        return str(write_network(directory, self.sandbox, specs, None, through).file)

    def hand(self, lab: Lab, systems: dict[str, str]) -> float:
        config = self.proxied.ssh_config if self.proxied else None
        return hand_deploy(lab, self.sandbox, systems, HOSTS, ssh_config=config)

    def close(self, lab: Lab, systems: dict[str, str]) -> None:
        if self.proxied is not None:
            self.proxied.close()
        _check_running(self.sandbox, systems)
        lab.stop(self.sandbox.directory)


def body() -> int:
    args = parse_args(__doc__ or "", rtt=True)
    first_rounds = reps(args, default=3, quick=1)
    noop_rounds = reps(args, default=7, quick=3)
    where = f", each behind a {args.rtt:g} ms RTT proxy" if args.rtt else ""
    header(
        f"fleet: {HOSTS} hosts{where}, nixlift vs a hand-run parallel loop (xargs -P {HOSTS})",
        args,
    )
    specs = {h: HostSpec(role=h, small_paths=SMALL_PATHS) for h in host_names(HOSTS)}
    hand_name = f"hand loop, xargs -P {HOSTS}"
    with Lab() as lab:
        with stage(f"building {HOSTS} systems here (not measured)"):
            systems = build_systems(write_network(lab.directory("build"), None, specs))

        current: dict[str, Target] = {}

        def fresh(case: str, round_index: int) -> None:
            finish()
            current["t"] = Target(lab, args.rtt)

        def finish() -> None:
            target = current.pop("t", None)
            if target is not None:
                target.close(lab, systems)

        first_cases: dict[str, Callable[[], float]] = {
            "nixlift deploy": lambda: timed(nixlift("deploy", current["t"].net_file(lab, specs))),
            hand_name: lambda: current["t"].hand(lab, systems),
        }
        with stage(f"first deploy: {first_rounds} interleaved round(s), a fresh sandbox per case"):
            first = interleaved(first_rounds, first_cases, before_each=fresh)
        finish()

        target = Target(lab, args.rtt)
        net = target.net_file(lab, specs)
        with stage("no-op redeploy: first deploy and a warm-up round (not measured)"):
            timed(nixlift("deploy", net))
            timed(nixlift("deploy", net))
            target.hand(lab, systems)
        cpu = CpuMeter()
        noop_cases = cpu.wrap(
            {
                "nixlift deploy": lambda: timed(nixlift("deploy", net)),
                hand_name: lambda: target.hand(lab, systems),
            }
        )
        with stage(f"no-op redeploy: {noop_rounds} interleaved rounds"):
            noop = interleaved(noop_rounds, noop_cases)
        target.close(lab, systems)

    rows = [("first deploy", n, median(t), spread(t), len(t)) for n, t in first.items()]
    rows += [("no-op redeploy", n, median(t), spread(t), len(t)) for n, t in noop.items()]
    print(table(("deploy", "how", "median s", "min-max s", "runs"), rows))
    print()
    # Everything here shares this machine's cores: the hosts' sshd and activations too.
    for name, seconds in cpu.seconds.items():
        print(
            f"CPU   no-op redeploy, {name}: the whole machine busy {median(seconds):.2f} "
            f"CPU-seconds (median; {spread(seconds)})"
        )
    print()
    for what, times, target_ratio in (
        ("first deploy  ", first, FIRST_TARGET),
        ("no-op redeploy", noop, NOOP_TARGET),
    ):
        ours, theirs = times["nixlift deploy"], times[hand_name]
        ratio = median(ours) / median(theirs)
        per_round = median([a / b for a, b in zip(ours, theirs, strict=True)])
        if args.rtt:
            verdict = f"at {args.rtt:g} ms RTT: context, the targets are for hosts on this machine"
        else:
            verdict = f"target ≤ {target_ratio}: " + ("met" if ratio <= target_ratio else "NOT met")
        print(
            f"RATIO {what} nixlift / hand loop = {ratio:.2f}  ({verdict}; "
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
