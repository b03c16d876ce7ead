#!/usr/bin/env bash
# README command 2: lint, format check, type-check and run every test (unit and integration).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests bench testbed
.venv/bin/ruff format --check --quiet src tests bench testbed
# the agent and the sandbox hosts' init run on hosts as POSIX sh
shellcheck -s sh src/nixlift/agent/agent.sh testbed/src/nixlift_testbed/init.sh
.venv/bin/mypy
exec .venv/bin/python -m pytest -n 2 -q "$@"
