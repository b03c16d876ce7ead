"""Health checks: on the host (cmd) and from the deployer (http); a failing one after activation
rolls its host back and counts as that host's failure."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import activations, current_system, deploy_json, err, nixlift, write_network

pytestmark = pytest.mark.integration

PASS = '{ cmd = [ "true" ]; description = "always"; period = 1; timeout = 2; }'
FAIL = (
    '{ cmd = [ "test" "-e" "/nonexistent" ]; description = "missing file"; period = 1; '
    "timeout = 2; }"
)


def fleet(count: int, checks: dict[int, str], label: str) -> str:
    return "".join(
        f'  h{i} = {{ ... }}: {{ environment.etc."v".text = "{label}"; '
        f"deployment.healthChecks.cmd = [ {checks.get(i, PASS)} ]; }};\n"
        for i in range(1, count + 1)
    )


def test_failing_checks_roll_back_their_hosts_only(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(10)
    done, good = deploy_json(write_network(tmp_path / "a", sb, fleet(10, {}, "good")))
    assert done.returncode == 0, done.stderr
    net = write_network(tmp_path / "b", sb, fleet(10, {3: FAIL, 8: FAIL}, "new"))
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    for i in range(1, 11):
        name, host = f"h{i}", sb.host(f"h{i}")
        if i in (3, 8):
            assert hosts[name]["status"] == "rolled-back", hosts[name]
            assert "health check 'missing file'" in err(hosts[name])
            assert current_system(host) == good[name]["system"]
        else:
            assert hosts[name]["status"] == "ok", hosts[name]
            assert current_system(host) == hosts[name]["system"] != good[name]["system"]
    assert "8 of 10 hosts succeeded" in done.stderr

    # without magic rollback the failed checks still roll back (automatic rollback) ...
    done, hosts = deploy_json(net, "--no-magic-rollback", "--on", "h3")
    assert hosts["h3"]["status"] == "rolled-back"
    assert current_system(sb.host("h3")) == good["h3"]["system"]
    # ... and with both off the host stays on the new system, reported as failed
    done, hosts = deploy_json(net, "--no-magic-rollback", "--no-auto-rollback", "--on", "h3")
    assert hosts["h3"]["status"] == "failed"
    assert current_system(sb.host("h3")) == hosts["h3"]["system"]
    # --no-checks: the checks are not run at all
    done, hosts = deploy_json(net, "--no-checks", "--on", "h8")
    assert hosts["h8"]["status"] == "ok"


@pytest.fixture
def web() -> Iterator[int]:
    """A web server on loopback: / answers 200, /broken 500."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/" else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_http_checks_from_the_deployer_and_nixlift_check(
    sandbox_factory: SandboxFactory, tmp_path: Path, web: int
) -> None:
    sb = sandbox_factory(2)
    (tmp_path / "port.json").write_text(json.dumps(web))
    body = """
  h1 = { ... }: { deployment.healthChecks.http = [ { host = "127.0.0.1";
    port = builtins.fromJSON (builtins.readFile ./port.json); path = "/"; period = 1;
    timeout = 2; } ]; };
  h2 = { ... }: { deployment.healthChecks.http = [ { host = "127.0.0.1";
    port = builtins.fromJSON (builtins.readFile ./port.json); path = "/broken";
    description = "broken page"; period = 1; timeout = 2; } ]; };
"""
    net = write_network(tmp_path, sb, body)
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "ok"
    assert hosts["h2"]["status"] == "rolled-back" and "HTTP 500" in err(hosts["h2"])
    assert current_system(sb.host("h2")) is None  # nothing ran before, nothing runs now

    table = nixlift("check", net, "--json")
    assert table.returncode == 1
    rows = {h["name"]: h["checks"][0] for h in json.loads(table.stdout)["hosts"]}
    assert rows["h1"]["ok"] and rows["h1"]["kind"] == "http"
    assert not rows["h2"]["ok"] and rows["h2"]["attempts"] >= 2
    assert "HTTP 500" in rows["h2"]["detail"]


def test_pre_deploy_checks_keep_a_host_from_activating(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        f"""
  h1 = {{ ... }}: {{ deployment.preDeployChecks.cmd = [ {FAIL} ]; }};
  h2 = {{ ... }}: {{ deployment.preDeployChecks.cmd = [ {PASS} ]; }};
""",
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "failed" and "pre-deploy check" in err(hosts["h1"])
    assert activations(sb.host("h1")) == []
    assert hosts["h2"]["status"] == "ok"
