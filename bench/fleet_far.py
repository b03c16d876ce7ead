"""bench/fleet.py with every host behind a 50 ms RTT proxy of its own (`fleet.py --rtt 50`): see
fleet.py. Context for issue 12's fleet targets, which are for hosts on this machine.

    .venv/bin/python bench/fleet_far.py [--quick]
"""

from __future__ import annotations

import sys

from common import main_guard
from fleet import body

if __name__ == "__main__":
    if "--rtt" not in sys.argv:
        sys.argv[1:1] = ["--rtt", "50"]
    main_guard(body)
