"""A fleet at a distance: bench/fleet.py's 10 hosts and hand-run loop, each host behind its own
delay proxy (`nixlift_testbed.proxy`, 50 ms round trips), as servers abroad or a fleet on
Wi-Fi are.

bench/fleet.py measures the hosts on this machine's own two cores: every host's sshd and
activation compete with the deployer, so it mostly measures CPU. Here round trips are what
costs, as on a real distant fleet. The hand loop (`xargs -P 10` of deploy-one.sh: per host
`nix-copy-closure`, then `ssh … switch-to-configuration`) logs in twice per host and copies with
nix's legacy protocol (a round trip per path); nixlift logs in once per host (plus magic
rollback's confirmation on a changed host), copies with ssh-ng and makes its other calls
through the lock's session. Both reach every host through its proxy (the hand loop through an
ssh config naming the proxies' ports, the hosts' own known_hosts names kept).

  first deploy     prebuilt systems to empty host stores: a fresh sandbox and fresh proxies
                   per case (started outside the timed part), checked afterwards
  no-op redeploy   every host already runs its system; both sides activate it again

Not a target of issue 12 (its fleet targets are bench/fleet.py's): context for them.

    .venv/bin/python bench/fleet_far.py [--quick] [--rtt MS]

--quick: 1 round of the first deploy and 2 of the no-op (instead of 2 and 4).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack

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

from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy, deployment
from nixlift_testbed.render import host_key_alias

HOSTS = 10
SMALL_PATHS = 20
RTT_MS = 50.0


def _rtt_ms() -> float:
    """--rtt MS (taken out of argv before the common options are parsed)."""
    if "--rtt" in sys.argv:
        at = sys.argv.index("--rtt")
        value = float(sys.argv[at + 1])
        del sys.argv[at : at + 2]
        return value
    return RTT_MS


class Far:
    """A sandbox whose hosts are each behind a proxy of their own."""

    def __init__(self, lab: Lab, rtt: float) -> None:
        self.sandbox = lab.sandbox(HOSTS)
        self.scope = lab.enter(ExitStack())
        self.proxies: dict[str, DelayProxy] = {}
        for h in self.sandbox.hosts:
            proxy = DelayProxy((h.address, h.port), rtt=rtt)
            self.proxies[h.name] = self.scope.enter_context(in_thread(proxy))
        self.ssh_config = self.sandbox.directory / "far_ssh_config"
        blocks = []
        for h in self.sandbox.hosts:
            address, port = self.proxies[h.name].address
            blocks.append(
                f"Host {h.name}\n  HostName {address}\n  Port {port}\n"
                f"  HostKeyAlias {host_key_alias(h.address, h.port)}\n"
            )
        # the sandbox's own config for the rest (user, key, known_hosts): values met first win
        blocks.append(f"Host *\n  Include {self.sandbox.ssh_config}\n")
        self.ssh_config.write_text("".join(blocks))

    def net_file(self, lab: Lab, specs: dict[str, HostSpec]) -> str:
        through = {
            name: deployment(self.sandbox, name, proxy.address)
            for name, proxy in self.proxies.items()
        }
        directory = lab.directory(f"net-{self.sandbox.directory.name}")
        return str(write_network(directory, self.sandbox, specs, None, through).file)

    def close(self, lab: Lab, systems: dict[str, str]) -> None:
        self.scope.close()
        wrong = [
            h.name
            for h in self.sandbox.hosts
            if h.readlink("/run/current-system") != systems[h.name]
        ]
        if wrong:
            raise CommandFailed(f"after a case, {', '.join(wrong)} do not run their systems")
        say(f"  checked: all {len(systems)} hosts run their systems")
        lab.stop(self.sandbox.directory)


def body() -> int:
    rtt_ms = _rtt_ms()
    args = parse_args(__doc__ or "")
    first_rounds = reps(args, default=2, quick=1)
    noop_rounds = reps(args, default=4, quick=2)
    header(
        f"fleet_far: {HOSTS} hosts, each behind a {rtt_ms:g} ms RTT proxy, nixlift vs a "
        f"hand-run parallel loop (xargs -P {HOSTS})",
        args,
    )
    specs = {h: HostSpec(role=h, small_paths=SMALL_PATHS) for h in host_names(HOSTS)}
    rtt = rtt_ms / 1000
    hand_name = f"hand loop, xargs -P {HOSTS}"
    with Lab() as lab:
        with stage(f"building {HOSTS} systems here (not measured)"):
            systems = build_systems(write_network(lab.directory("build"), None, specs))

        current: dict[str, Far] = {}

        def fresh(case: str, round_index: int) -> None:
            finish()
            current["far"] = Far(lab, rtt)

        def finish() -> None:
            far = current.pop("far", None)
            if far is not None:
                far.close(lab, systems)

        def hand(far: Far) -> float:
            return hand_deploy(lab, far.sandbox, systems, HOSTS, ssh_config=far.ssh_config)

        first_cases: dict[str, Callable[[], float]] = {
            "nixlift deploy": lambda: timed(nixlift("deploy", current["far"].net_file(lab, specs))),
            hand_name: lambda: hand(current["far"]),
        }
        with stage(f"first deploy: {first_rounds} round(s), a fresh sandbox and proxies per case"):
            first = interleaved(first_rounds, first_cases, before_each=fresh)
        finish()

        far = Far(lab, rtt)
        net = far.net_file(lab, specs)
        with stage("no-op redeploy: first deploy and a warm-up round (not measured)"):
            timed(nixlift("deploy", net))
            timed(nixlift("deploy", net))
            hand(far)
        noop_cases: dict[str, Callable[[], float]] = {
            "nixlift deploy": lambda: timed(nixlift("deploy", net)),
            hand_name: lambda: hand(far),
        }
        with stage(f"no-op redeploy: {noop_rounds} interleaved rounds"):
            noop = interleaved(noop_rounds, noop_cases)
        far.close(lab, systems)

    rows = [("first deploy", n, median(t), spread(t), len(t)) for n, t in first.items()]
    rows += [("no-op redeploy", n, median(t), spread(t), len(t)) for n, t in noop.items()]
    print(table(("deploy", "how", "median s", "min-max s", "runs"), rows))
    print()
    for what, times in (("first deploy  ", first), ("no-op redeploy", noop)):
        ours, theirs = times["nixlift deploy"], times[hand_name]
        ratio = median(ours) / median(theirs)
        per_round = median([a / b for a, b in zip(ours, theirs, strict=True)])
        print(
            f"RATIO {what} nixlift / hand loop = {ratio:.2f}  (at {rtt_ms:g} ms RTT; "
            f"median per round {per_round:.2f})"
        )
    return 0


if __name__ == "__main__":
    main_guard(body)
