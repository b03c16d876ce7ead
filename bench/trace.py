"""Where a no-op redeploy's time goes: `nixlift -v --debug deploy NET`, each stderr line stamped
with the milliseconds since nixlift started (commands nixlift runs appear as `run: …` lines).

    .venv/bin/python bench/trace.py [--hosts N] [--quick]

Not a benchmark with a target: a timeline for the analysis in docs/benchmarks.md. It starts N
sandbox hosts (default 1), deploys once (not shown), then shows the second, no-op deploy.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

from common import ENV, HostSpec, Lab, host_names, main_guard, nixlift, run, write_network

#: lines that start a message (others continue a logged remote script)
_FIRST_LINE = re.compile(r"^(nixlift: |\[|\S+: |\d+ of )")


def body() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="accepted; changes nothing")
    parser.add_argument("--width", type=int, default=150, help="cut lines at this width")
    args = parser.parse_args()
    with Lab() as lab:
        sandbox = lab.sandbox(args.hosts)
        net = write_network(
            lab.directory("net"), sandbox, {n: HostSpec(role=n) for n in host_names(args.hosts)}
        )
        run(nixlift("deploy", net.file))
        run(nixlift("--version"))  # bytecode cached before the traced run
        begun = time.perf_counter()
        child = subprocess.Popen(
            nixlift("-v", "--debug", "deploy", net.file),
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
