"""nixlift's command line (cli/main.py is the program).

A command's start creates ~100 000 objects that live until it ends (modules, classes, their
functions): with the collector's default threshold (a collection every 700 new objects) the
collector walks them again and again while they are made, ~10 ms of every start here. Every
10 000 it runs a few times; a cycle left behind waits no longer than that."""

import gc

gc.set_threshold(10_000)
