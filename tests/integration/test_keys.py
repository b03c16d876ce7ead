"""Keys (NixOps, colmena) and secrets (morph) on real sandbox hosts: what lands where, with which
owner and mode, what is left alone, what is removed, what fails, and that the secret text is
nowhere it must not be."""

from __future__ import annotations

import json
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import activations, by_name, deploy_json, err, nixlift, write_network
from procwatch import watching_processes

from nixlift_testbed import SandboxHost

pytestmark = pytest.mark.integration

# Made anew for each run and never written whole in this file, so that finding one anywhere
# (this file may well sit in a Nix store, as a flake's source) means nixlift put it there.
_NONCE = uuid.uuid4().hex
SECRET = f"hunter2-db-password-{_NONCE}"
FILE_SECRET = f"tls-key-from-a-file-{_NONCE}"
COMMAND_SECRET = f"vpn-key-from-a-command-{_NONCE}"

KEYS = f"""
  h1 = {{ ... }}: {{
    deployment.keys.db-password = {{
      text = "{SECRET}"; user = "nobody"; group = "nogroup"; permissions = "0640";
    }};
    deployment.keys.tls = {{ keyFile = ./tls.key; destDir = "/root/tls"; name = "server.key"; }};
    deployment.keys.vpn = {{
      keyCommand = [ "sh" "-c" "printf vpn-key-from-a-command-; printf {_NONCE}" ];
      uploadAt = "post-activation";
    }};
  }};
"""


def keys_network(tmp: Path, sb: object, body: str = KEYS) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "tls.key").write_text(FILE_SECRET)
    return write_network(tmp, sb, body)  # type: ignore[arg-type]


def mode_owner(host: SandboxHost, inside: str) -> tuple[int, int, int]:
    st = host.path(inside).stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_keys_land_with_content_owner_and_mode_and_are_left_alone_when_unchanged(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = keys_network(tmp_path, sb)
    done, hosts = deploy_json(net, "--log-dir", tmp_path / "logs")
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    assert sorted(hosts["h1"]["keys"]["written"]) == ["db-password", "tls", "vpn"]
    assert h1.read_text("/run/keys/db-password") == SECRET
    assert mode_owner(h1, "/run/keys/db-password") == (0o640, 65534, 65534)
    assert h1.read_text("/root/tls/server.key") == FILE_SECRET
    assert mode_owner(h1, "/root/tls/server.key") == (0o600, 0, 0)
    assert h1.read_text("/run/keys/vpn") == COMMAND_SECRET
    assert stat.S_IMODE(h1.path("/run/keys").stat().st_mode) == 0o750
    assert h1.path("/run/keys/done").exists()
    # nothing is left of the temporary files
    assert [p.name for p in h1.path("/run/keys").iterdir() if p.name.startswith(".")] == []

    mtimes = {
        p: h1.path(p).stat().st_mtime_ns
        for p in ("/run/keys/db-password", "/run/keys/vpn", "/root/tls/server.key")
    }
    time.sleep(0.05)
    again, hosts = deploy_json(net)
    assert again.returncode == 0, again.stderr
    assert hosts["h1"]["keys"]["written"] == []
    assert sorted(hosts["h1"]["keys"]["unchanged"]) == ["db-password", "tls", "vpn"]
    assert {p: h1.path(p).stat().st_mtime_ns for p in mtimes} == mtimes

    # the secret texts are nowhere else: outputs, logs, the host's history and the stores
    history = nixlift("history", net, "--json")
    evaluated = nixlift("eval", net, "--json")
    logs = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    for text in (
        done.stdout,
        done.stderr,
        again.stdout,
        again.stderr,
        logs,
        history.stdout,
        evaluated.stdout,
        h1.read_text("/nix/var/nixlift/history.jsonl") or "",
    ):
        for secret in (SECRET, FILE_SECRET, COMMAND_SECRET):
            assert secret not in text
    for store in (Path("/nix/store"), h1.path("/nix/store")):
        found = subprocess.run(
            ["grep", "-rlF", "-e", SECRET, "-e", COMMAND_SECRET, str(store)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.stdout == ""


def test_keys_never_appear_in_argv_or_in_the_environment_of_remote_commands(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = keys_network(
        tmp_path,
        sb,
        KEYS.replace("};\n  };", "};\n    standin.activation.sleepSeconds = 1;\n  };", 1),
    )
    with watching_processes() as seen:
        done, _ = deploy_json(net)
    assert done.returncode == 0, done.stderr
    assert any(b"nixlift" in s for s in seen)  # the sampler saw the deploy's processes
    for secret in (SECRET, FILE_SECRET, COMMAND_SECRET):
        assert not any(secret.encode() in s for s in seen)


def test_keys_no_longer_declared_are_removed(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    done, _ = deploy_json(keys_network(tmp_path / "all", sb))
    assert done.returncode == 0, done.stderr
    fewer = keys_network(tmp_path / "fewer", sb, KEYS.split("deployment.keys.tls")[0] + "};\n")
    done, _ = deploy_json(fewer)
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    assert h1.read_text("/run/keys/db-password") == SECRET
    assert not h1.path("/root/tls/server.key").exists()
    assert not h1.path("/run/keys/vpn").exists()


def test_morph_secrets_and_their_action(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cert.pem").write_text("a certificate")
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: {
    deployment.secrets.cert = {
      source = "./secrets/cert.pem"; destination = "/root/certs/site/cert.pem";
      owner.group = "nogroup"; permissions = "0440";
      action = [ "sh" "-c" "echo reloaded >> /run/reloads" ];
    };
    deployment.secrets.other = {
      source = "./secrets/cert.pem"; destination = "/root/certs/other.pem";
      action = [ "sh" "-c" "echo reloaded >> /run/reloads" ];
    };
  };
""",
    )
    done, hosts = deploy_json(net, "--upload-secrets")  # morph's flag: accepted, always true
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    assert h1.read_text("/root/certs/site/cert.pem") == "a certificate"
    assert mode_owner(h1, "/root/certs/site/cert.pem") == (0o440, 0, 65534)
    assert h1.read_text("/run/reloads") == "reloaded\n"  # one action, run once
    again, _ = deploy_json(net)
    assert again.returncode == 0
    assert h1.read_text("/run/reloads") == "reloaded\n"  # nothing changed: no action

    (tmp_path / "secrets" / "cert.pem").write_text("a new certificate")
    failing = net.read_text().replace('"echo reloaded >> /run/reloads"', '"exit 7"', 1)
    net.write_text(failing)
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "failed"
    assert "the action 'sh -c exit 7' after writing deployment.secrets.cert failed" in err(
        hosts["h1"]
    )
    assert len(activations(h1)) == 2  # the failing host was not activated again


def test_upload_keys_restores_keys_after_a_reboot(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = keys_network(tmp_path, sb)
    done, _ = deploy_json(net)
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    import asyncio

    asyncio.run(h1.reboot())
    assert not h1.path("/run/keys/db-password").exists()  # /run is empty after a boot
    sent = nixlift("upload-keys", net, "--json")
    assert sent.returncode == 0, sent.stderr
    assert sorted(by_name(json.loads(sent.stdout))["h1"]["written"]) == ["db-password", "vpn"]
    assert h1.read_text("/run/keys/db-password") == SECRET
    assert h1.read_text("/run/keys/vpn") == COMMAND_SECRET
    assert nixlift("send-keys", net).returncode == 0  # NixOps' name for it


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (
            '{ keyCommand = [ "sh" "-c" "echo no vault token >&2; exit 3" ]; }',
            ["keyCommand of deployment.keys.k of h1", "no vault token"],
        ),
        ('{ keyFile = "/nonexistent/key"; }', ["cannot read /nonexistent/key"]),
        ('{ text = "x"; destDir = "/proc/no-keys-here"; }', ["cannot write /proc/no-keys-here/k"]),
    ],
)
def test_a_key_that_cannot_be_had_or_written_stops_its_host_before_activation(
    sandbox_factory: SandboxFactory, tmp_path: Path, key: str, says: list[str]
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        f"""
  h1 = {{ ... }}: {{ deployment.keys.k = {key}; }};
  h2 = {{ ... }}: {{ }};
""",
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "failed" and not hosts["h1"]["activated"]
    for words in says:
        assert words in err(hosts["h1"]) + (done.stderr or "")
    assert activations(sb.host("h1")) == []
    assert hosts["h2"]["status"] == "ok"


def test_bad_key_declarations_are_refused_before_any_host_is_touched(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    for key, words in (
        ('{ text = "x"; name = "two words"; }', "cannot write a file at"),
        ('{ text = "x"; permissions = "rw"; }', "is not a file mode"),
    ):
        net = write_network(
            tmp_path / words.split()[0], sb, f"  h1 = {{ ... }}: {{ deployment.keys.k = {key}; }};"
        )
        done = nixlift("deploy", net)
        assert done.returncode == 2 and words in done.stderr and "deployment.keys.k" in done.stderr
    assert activations(sb.host("h1")) == []


def test_eval_json_hides_health_check_headers(tmp_path: Path) -> None:
    net = write_network(
        tmp_path,
        None,
        """
  h1 = { ... }: {
    deployment.healthChecks.http = [ { path = "/"; headers.Authorization = "Bearer s3cr3t"; } ];
  };
""",
    )
    done = nixlift("eval", net, "--json")
    assert done.returncode == 0, done.stderr
    assert "s3cr3t" not in done.stdout
    [machine] = json.loads(done.stdout)["machines"]
    assert machine["deployment"]["healthChecks"]["http"][0]["headers"] == {
        "Authorization": "<redacted>"
    }
