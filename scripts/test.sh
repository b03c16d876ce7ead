#!/usr/bin/env bash
# README command 2: lint, type-check and run every test (unit and integration).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests bench testbed
.venv/bin/mypy
exec .venv/bin/python -m pytest -n 2 -q "$@"
