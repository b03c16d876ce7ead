#!/usr/bin/env bash
# A real deploy to two local sandbox hosts: start them, deploy the demo network (its systems
# come from the test bed's tiny stand-in nixpkgs), show the result and the /etc/motd it put on
# the hosts, deploy again (nothing to copy), stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
nixlift=.venv/bin/nixlift
sandbox=.venv/bin/nixlift-sandbox   # the test bed's command (testbed/)
dir=${NIXLIFT_SANDBOX_DIR:-$(mktemp -d /tmp/nixlift-demo.XXXXXX)}
export NIXLIFT_SANDBOX_DIR=$dir
trap '$sandbox down --purge >/dev/null 2>&1 || true' EXIT

echo "+ nixlift-sandbox up 2"
network=$($sandbox up 2)
echo "+ nixlift create $network -d demo"
NIXLIFT_REGISTRY=$dir/deployments.json $nixlift create "$network" -d demo >/dev/null
echo "+ nixlift deploy -d demo"
time NIXLIFT_REGISTRY=$dir/deployments.json $nixlift deploy -d demo
echo "+ nixlift info -d demo"
NIXLIFT_REGISTRY=$dir/deployments.json $nixlift info -d demo
echo "+ nixlift exec -d demo -- cat /etc/motd   (the file the network declares, on each host)"
NIXLIFT_REGISTRY=$dir/deployments.json $nixlift exec -d demo -- cat /etc/motd
echo "+ nixlift deploy -d demo   (again: nothing to copy)"
time NIXLIFT_REGISTRY=$dir/deployments.json $nixlift deploy -d demo
