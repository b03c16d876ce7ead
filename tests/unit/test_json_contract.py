"""The JSON contract's pure side: a schema for every command that prints `--json`, each a valid
JSON Schema, and the documents the output module builds from results valid against them."""

from __future__ import annotations

import argparse
import json
from importlib import resources

import jsonschema
import pytest

from nixlift.cli.output import document, error_json, normalize_time, result_json, rfc3339
from nixlift.cli.parser import build_parser
from nixlift.model import HostResult, Stage, Status

SHARED = {"build": "deploy", "apply-local": "deploy", "send-keys": "upload-keys"}


def schema(name: str) -> dict[str, object]:
    text = resources.files("nixlift.schemas").joinpath(f"{name}.json").read_text()
    loaded: dict[str, object] = json.loads(text)
    return loaded


def json_commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(
        {
            name
            for name, p in sub.choices.items()
            if any("--json" in a.option_strings for a in p._actions)
        }
    )


def test_every_json_command_has_a_valid_schema() -> None:
    commands = json_commands()
    assert "deploy" in commands and "info" in commands
    for command in [*commands, "error"]:
        loaded = schema(SHARED.get(command, command))
        jsonschema.Draft202012Validator.check_schema(loaded)


@pytest.mark.parametrize(
    "result",
    [
        HostResult("ok", Status.OK, system="/nix/store/abc-nixos-system", copied=True),
        HostResult("sized", Status.OK, copied=True, copy_tries=2, copied_bytes=12_897_485),
        HostResult(
            "bad",
            Status.ROLLED_BACK,
            error="activation of bad failed",
            hint="see the log",
            detail="line\n",
            error_kind="rolled-back",
            durations=((Stage.BUILD, 1.5),),
        ),
        HostResult("never", Status.SKIPPED),
    ],
)
def test_a_deploy_document_is_valid(result: HostResult) -> None:
    doc = document(
        "deploy",
        deployment="net",
        source="net.nix",
        output=None,
        goal="switch",
        started_at=rfc3339(0),
        finished_at=rfc3339(),
        hosts=[result_json(result)],
    )
    jsonschema.validate(doc, schema("deploy"))
    host = doc["hosts"][0]
    assert (host["error"] is None) == (result.error is None)
    if result.error:
        assert host["error"] == error_json(
            result.error_kind or "", result.error, "see the log", "line\n"
        )


def test_a_deploy_document_missing_a_field_is_not() -> None:
    host = result_json(HostResult("x", Status.OK))
    del host["status"]
    doc = document(
        "deploy", deployment="n", source="s", output=None, goal="switch", started_at="",
        finished_at="", hosts=[host],
    )  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema("deploy"))


def test_times_are_rfc3339_utc() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert normalize_time("2026-11-24T21:51:03+0100") == "2026-11-24T20:51:03Z"
    assert normalize_time("2026-11-24T20:51:03Z") == "2026-11-24T20:51:03Z"
    assert normalize_time(None) is None
