"""One host, no-op and changed: `nixlift deploy NET` vs the minimal sequence typed by hand.

No-op: the host already runs the system (nixlift skips magic rollback's confirmation login
then: nothing changed). Changed: the host gets a system it never ran, prebuilt here (not
measured) with a role never deployed before, so both sides copy its few new paths and switch
to it with their full safety (nixlift: lock, magic rollback's confirmation, history). The
hand-run sequence is what a person types to deploy one machine without a tool, the same for
both:

    drv=$(nix-instantiate -I nixpkgs=STANDIN toplevel.nix --argstr name h1)
    sys=$(nix-store --realise "$drv")
    NIX_SSHOPTS="-F CFG" nix-copy-closure --to h1 "$sys"
    ssh -F CFG h1 "nix-env -p /nix/var/nix/profiles/system --set $sys &&
                   $sys/bin/switch-to-configuration switch"

Every case runs ~7 times, interleaved (order rotated each round); the medians and their ratios
are printed. Targets (issue 12): no-op nixlift/hand ≤ 1.0, changed ≤ 1.3. Before each no-op
case the host is put back on the no-op system if a changed case moved it (not measured).
nixlift runs with its bytecode cached, as installed by
pip; the row "no .pyc" shows the same deploy compiling nixlift from source at each start
(PYTHONDONTWRITEBYTECODE=1 with the editable install, as in the dev shell).

Further rows take nixlift's run apart (start-up alone, + evaluation, + build check, + connect
and probe) and time each hand step, for the analysis in docs/benchmarks.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

from common import (
    ENV,
    STANDIN,
    CommandFailed,
    HostSpec,
    Lab,
    Network,
    attempt,
    build_systems,
    header,
    interleaved,
    main_guard,
    median,
    nixlift,
    no_bytecode_env,
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

HAND_SH = r"""#!/bin/bash
# Redeploy one machine by hand: evaluate, build, copy, set the profile, switch.
set -euo pipefail
toplevel=$1 name=$2 cfg=$3 standin=$4
drv=$(nix-instantiate -I nixpkgs="$standin" "$toplevel" --argstr name "$name")
sys=$(nix-store --realise "$drv")
NIX_SSHOPTS="-F $cfg" nix-copy-closure --to "$name" "$sys"
ssh -F "$cfg" "$name" \
  "nix-env -p /nix/var/nix/profiles/system --set $sys && $sys/bin/switch-to-configuration switch"
"""

TARGET = 1.0
CHANGED_TARGET = 1.3
PLAIN = "nixlift deploy, magicRollback = false"
CHANGED_NIXLIFT = "nixlift deploy, changed system"
CHANGED_HAND = "hand-run, changed system"


def body() -> int:
    args = parse_args(__doc__ or "")
    rounds = reps(args, default=7, quick=3)
    header("overhead: no-op and changed deploy of 1 host, nixlift vs hand-run", args)
    with Lab() as lab:
        sandbox = lab.sandbox(1)
        net = write_network(lab.directory("net"), sandbox, {"h1": HostSpec(role="overhead")})
        hand = lab.root / "hand.sh"
        hand.write_text(HAND_SH)
        cfg = str(sandbox.ssh_config)

        with stage("first deploy (not measured)"):
            first = run(nixlift("deploy", net.file, "--json"))
        drv = run(
            ["nix-instantiate", "-I", f"nixpkgs={STANDIN}", net.toplevel, "--argstr", "name", "h1"]
        ).strip()
        system = run(["nix-store", "--realise", drv]).strip()
        if system not in first:
            raise CommandFailed(
                f"the hand-run evaluation built {system}, which nixlift did "
                "not deploy: the two sides would not deploy the same system"
            )
        hand_argv: list[str | Path] = ["bash", hand, net.toplevel, "h1", cfg, str(STANDIN)]
        activate = (
            f"nix-env -p /nix/var/nix/profiles/system --set {system} && "
            f"{system}/bin/switch-to-configuration switch"
        )

        cases: dict[str, Callable[[], float]] = {
            # the two compared
            "nixlift deploy": lambda: timed(nixlift("deploy", net.file)),
            "hand-run": lambda: timed(hand_argv),
            "nixlift deploy, no .pyc": lambda: timed(
                nixlift("deploy", net.file), env=no_bytecode_env()
            ),
            # nixlift taken apart: each row adds a part of the run to the one before
            "nixlift --version (start-up)": lambda: timed(nixlift("--version")),
            "nixlift eval (+ evaluation)": lambda: timed(nixlift("eval", net.file)),
            "nixlift build (+ show-config, realise)": lambda: timed(nixlift("build", net.file)),
            "nixlift deploy push (+ ssh, probe)": lambda: timed(
                nixlift("deploy", net.file, "push")
            ),
            # the hand steps one by one
            "hand: nix-instantiate": lambda: timed(
                [
                    "nix-instantiate",
                    "-I",
                    f"nixpkgs={STANDIN}",
                    net.toplevel,
                    "--argstr",
                    "name",
                    "h1",
                ]
            ),
            "hand: nix-store --realise": lambda: timed(["nix-store", "--realise", drv]),
            "hand: nix-copy-closure": lambda: timed(
                ["nix-copy-closure", "--to", "h1", system], env={**ENV, "NIX_SSHOPTS": f"-F {cfg}"}
            ),
            "hand: ssh activate": lambda: timed(["ssh", "-F", cfg, "h1", activate]),
            "ssh -F CFG h1 true (one handshake)": lambda: timed(["ssh", "-F", cfg, "h1", "true"]),
        }
        # What the default safety net costs: the same deploy without magic rollback (if this
        # nixlift has the option), on a network of its own for the same host and system.
        plain = write_network(
            lab.directory("net-plain"),
            sandbox,
            {"h1": HostSpec(role="overhead")},
            {"magicRollback": False},
        )
        _, no_option = attempt(nixlift("eval", plain.file))
        if no_option is None:
            cases[PLAIN] = lambda: timed(nixlift("deploy", plain.file))
        else:
            say(f"  (no magicRollback row: {no_option})")
        # A changed system per run of a changed case: a new role, built before the case.
        serial = itertools.count(1)
        changed: dict[str, tuple[Network, str]] = {}

        def before(name: str, round_index: int) -> None:
            host = sandbox.host("h1")
            if name in (CHANGED_NIXLIFT, CHANGED_HAND):
                role = f"overhead-changed-{next(serial)}"
                net = write_network(
                    lab.directory(f"net-{role}"), sandbox, {"h1": HostSpec(role=role)}
                )
                changed[name] = (net, build_systems(net)["h1"])
            elif host.readlink("/run/current-system") != system:
                run(["ssh", "-F", cfg, "h1", activate])  # back on the no-op system

        def deploy_changed(name: str, argv: Callable[[Network], Sequence[str | Path]]) -> float:
            net, new_system = changed[name]
            seconds = timed(argv(net))
            if sandbox.host("h1").readlink("/run/current-system") != new_system:
                raise CommandFailed(f"{name}: the host does not run {new_system}")
            return seconds

        cases[CHANGED_NIXLIFT] = lambda: deploy_changed(
            CHANGED_NIXLIFT, lambda net: nixlift("deploy", net.file)
        )
        cases[CHANGED_HAND] = lambda: deploy_changed(
            CHANGED_HAND, lambda net: ["bash", hand, net.toplevel, "h1", cfg, str(STANDIN)]
        )
        with stage("warm-up round (not measured)"):
            interleaved(1, cases, before_each=before)
        with stage(f"{rounds} interleaved rounds"):
            times = interleaved(rounds, cases, before_each=before)

    ours, theirs = times["nixlift deploy"], times["hand-run"]
    ratio = median(ours) / median(theirs)
    per_round = median([a / b for a, b in zip(ours, theirs, strict=True)])
    rows = [(name, median(t), spread(t), len(t)) for name, t in times.items()]
    print(table(("case", "median s", "min-max s", "runs"), rows))
    print()
    print(
        f"RATIO nixlift/hand (medians)           = {ratio:.2f}  (target ≤ {TARGET:.1f}: "
        f"{'met' if ratio <= TARGET else 'NOT met'})"
    )
    print(f"RATIO nixlift/hand (median per round)  = {per_round:.2f}")
    if PLAIN in times:
        print(
            f"RATIO nixlift/hand, magicRollback=false = "
            f"{median(times[PLAIN]) / median(theirs):.2f}  (deployment.magicRollback = false)"
        )
    ours_c, theirs_c = times[CHANGED_NIXLIFT], times[CHANGED_HAND]
    changed_ratio = median(ours_c) / median(theirs_c)
    changed_round = median([a / b for a, b in zip(ours_c, theirs_c, strict=True)])
    verdict = "met" if changed_ratio <= CHANGED_TARGET else "NOT met"
    print(
        f"RATIO changed system, nixlift/hand     = {changed_ratio:.2f}  (target ≤ "
        f"{CHANGED_TARGET}: {verdict}; median per round {changed_round:.2f})"
    )
    nopyc = median(times["nixlift deploy, no .pyc"]) / median(theirs)
    print(
        f"RATIO nixlift/hand without bytecode    = {nopyc:.2f}  (nixlift compiled from "
        "source at each start, as under PYTHONDONTWRITEBYTECODE=1)"
    )
    print(
        f"nixlift overhead over hand-run (median) = {(median(ours) - median(theirs)) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    main_guard(body)
