"""Deploys keep the sandbox hosts' users who are not root reachable (netkit's defaults)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import deploy_json, write_network

pytestmark = pytest.mark.integration


def test_a_deployed_system_keeps_deploy_and_admin_reachable(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    h1 = sb.host("h1")
    net = write_network(tmp_path, sb, '  h1 = { ... }: { environment.etc.v.text = "1"; };')
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    # the system's activation manages the keys of all three now (the sandbox's key)
    assert h1.read_text("/etc/ssh/authorized_keys.d/.managed") == "admin\ndeploy\nroot\n"
    asyncio.run(h1.reboot())
    assert h1.readlink("/run/current-system") == hosts["h1"]["system"]
    for user in (sb.deploy_user, sb.admin_user):
        argv = sb.ssh_argv("h1", "id -un", user=user)
        login = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert (login.returncode, login.stdout) == (0, f"{user}\n"), login.stderr
