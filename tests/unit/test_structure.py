"""The package's import rules, checked on the source (imports inside functions included):

    cli → deploy → agent → transport → nix → the leaves (model, errors, events, proc, …)

Nothing outside cli/ imports cli/; only cli/ imports ui/, and ui/ sees only events, model and
errors; the product never imports the test bed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "nixlift"

LEAVES = {"model", "plans", "goal", "errors", "events", "proc", "selection", "registry", "__init__"}
#: what each part may import besides itself and the leaves
ALLOWED: dict[str, set[str]] = {
    "nix": set(),
    "transport": {"nix"},
    "agent": {"transport"},
    "deploy": {"agent", "transport", "nix"},
    "ui": set(),
    "cli": {"deploy", "agent", "transport", "nix", "ui"},
    # `python -m nixlift`
    "__main__": {"cli"},
}


def part_of(module: str) -> str:
    """`nixlift.deploy.host` → `deploy`; `nixlift.model` → `model`."""
    return module.split(".")[1] if module.count(".") else "__init__"


def imports() -> list[tuple[Path, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
    return found


def own_part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_part_imports_only_what_it_may() -> None:
    wrong = []
    for path, module in imports():
        if module.startswith("nixlift_testbed"):
            wrong.append(f"{path.name}: the product imports the test bed ({module})")
            continue
        if not module.startswith("nixlift.") and module != "nixlift":
            continue
        mine, theirs = own_part(path), part_of(module)
        if theirs == mine:
            continue
        if mine in LEAVES:
            ok = theirs in LEAVES
        elif mine == "ui":
            ok = theirs in {"events", "model", "plans", "errors"}
        else:
            ok = theirs in LEAVES or theirs in ALLOWED[mine]
        if not ok:
            wrong.append(f"{path.relative_to(SRC)} imports {module}")
    assert wrong == []


@pytest.mark.parametrize("part", ["cli", "ui"])
def test_cli_and_ui_are_imported_only_from_cli(part: str) -> None:
    users = {own_part(p) for p, m in imports() if part_of(m) == part and m.startswith("nixlift.")}
    assert users <= {"cli", part, "__main__"}


def test_the_leaves_stay_leaves() -> None:
    # model (with goal), errors and events are what everything shares: they import nothing
    # else of nixlift
    shared = {"model", "plans", "goal", "errors", "events"}
    for path, module in imports():
        if own_part(path) in shared and module.startswith("nixlift."):
            assert part_of(module) in shared, (path, module)


def test_a_deploy_starts_its_evaluation_before_importing_the_rest() -> None:
    """What a deploy imports before nix evaluates is only what starting the evaluation needs
    (cli/main.py's BEFORE_THE_LOOP): asyncio and the transport come while nix evaluates, the
    deploy's own modules once the evaluation has named its machines (cli/deploy_cmd.py)."""
    later = [
        "asyncio",
        "nixlift.model",
        "nixlift.registry",
        "nixlift.transport.ssh",
        "nixlift.cli.deploying",
        "nixlift.deploy.pipeline",
    ]
    code = (
        "import sys, nixlift.cli.main, nixlift.cli.deploy_cmd\n"
        f"print([m for m in {later!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def imported_by(code: str, modules: list[str]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{code}\nimport sys\nprint([m for m in {modules!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = ast.literal_eval(done.stdout.strip())
    return found


def test_connecting_does_not_wait_for_the_model() -> None:
    """A deploy connects to an announced machine while nix evaluates: the transport imports
    neither the model nor the events (a copy imports them when it runs)."""
    later = ["nixlift.model", "nixlift.events", "nixlift.nix.closure", "nixlift.nix.logparse"]
    assert imported_by("import nixlift.transport.ssh", later) == []


def test_a_deploy_imports_only_what_it_uses() -> None:
    """What a deploy imports (cli/deploy_cmd.py's import_the_rest) leaves out what only some
    deploys use: plans, the fleet cache, TLS (asyncio's, see cli/main.py), and stdlib modules
    that cost milliseconds for a line's worth of use."""
    unused = [
        "nixlift.plans",
        "nixlift.deploy.cache",
        "nixlift.cli.cache_cmd",
        "ssl",
        "uuid",
        "datetime",
        "difflib",
        "importlib.resources",
        "nixlift.agent.answers",
        "nixlift.nix.discover",
    ]
    code = (
        "from nixlift.cli.main import import_asyncio_without_tls\n"
        "import_asyncio_without_tls()\n"
        "from nixlift.cli.deploy_cmd import import_the_rest\n"
        "import_the_rest()"
    )
    assert imported_by(code, unused) == []


def test_asyncio_runs_without_tls_and_ssl_stays_importable() -> None:
    code = (
        "from nixlift.cli.main import import_asyncio_without_tls\n"
        "import_asyncio_without_tls()\n"
        "import asyncio, sys\n"
        "assert 'ssl' not in sys.modules\n"
        "assert asyncio.run(asyncio.sleep(0, 'ran')) == 'ran'\n"
        "import ssl\n"
        "assert ssl.create_default_context() is not None"
    )
    assert imported_by(code, ["ssl"]) == ["ssl"]
