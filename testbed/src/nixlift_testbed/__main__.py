"""`python -m nixlift_testbed …` is `nixlift-sandbox …`."""

from nixlift_testbed.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
