#!/usr/bin/env bash
# README command 1: set up a fresh Debian machine and run a real demo deploy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/demo.sh
