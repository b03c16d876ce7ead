"""Where a deploy's time goes: `nixlift -v --debug deploy NET`, each stderr line stamped with the
milliseconds since nixlift started (commands nixlift runs appear as `run: …` lines).

    .venv/bin/python bench/trace.py [--hosts N] [--quick]
    .venv/bin/python bench/trace.py --rtt 50 --small-paths 200 --first push

Not a benchmark with a target: a timeline for the analysis in docs/benchmarks.md. It starts N
sandbox hosts (default 1), deploys once (not shown), then shows the second, no-op deploy.
`--first GOAL` shows the first deploy instead (empty host stores), with that goal; `--rtt MS`
reaches the one host through the test bed's delay proxy (as bench/latency_copy.py does);
`--small-paths N` gives each system N small paths of its own.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

from common import ENV, HostSpec, Lab, host_names, main_guard, nixlift, run, write_network

from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy, deployment

#: lines that start a message (others continue a logged remote script)
_FIRST_LINE = re.compile(r"^(nixlift: |\[|\S+: |\d+ of )")


def body() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="accepted; changes nothing")
    parser.add_argument("--width", type=int, default=150, help="cut lines at this width")
    parser.add_argument("--rtt", type=float, default=0, metavar="MS", help="through a proxy")
    parser.add_argument("--small-paths", type=int, default=0, metavar="N")
    parser.add_argument("--first", metavar="GOAL", help="trace the first deploy, this goal")
    args = parser.parse_args()
    if args.rtt and args.hosts != 1:
        parser.error("--rtt takes one host")
    with Lab() as lab:
        sandbox = lab.sandbox(args.hosts)
        specs = {n: HostSpec(role=n, small_paths=args.small_paths) for n in host_names(args.hosts)}
        through: dict[str, object] = {}
        if args.rtt:
            host = sandbox.host("h1")
            proxy = DelayProxy((host.address, host.port), rtt=args.rtt / 1000)
            through = deployment(sandbox, "h1", lab.enter(in_thread(proxy)).address)
        net = write_network(lab.directory("net"), sandbox, specs, through)
        if args.first:
            run(nixlift("build", net.file))  # the build is not what is traced
        else:
            run(nixlift("deploy", net.file))
        run(nixlift("--version"))  # bytecode cached before the traced run
        goal = [args.first] if args.first else []
        begun = time.perf_counter()
        child = subprocess.Popen(
            nixlift("-v", "--debug", "deploy", net.file, *goal),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert child.stderr is not None
        for line in child.stderr:
            ms = (time.perf_counter() - begun) * 1000
            if not _FIRST_LINE.match(line):
                continue  # the rest of a logged multi-line remote script
            print(f"{ms:7.0f} ms  {line.rstrip()[: args.width]}")
        child.wait()
        print(f"{(time.perf_counter() - begun) * 1000:7.0f} ms  (exit {child.returncode})")
    return 0


if __name__ == "__main__":
    main_guard(body)
