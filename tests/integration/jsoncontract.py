"""The JSON contract, checked on real output: every `--json` document a test sees is validated
against the schema nixlift ships for its command (src/nixlift/schemas/, docs/json.md)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

#: commands that share a schema
_SCHEMA_OF = {"build": "deploy", "apply-local": "deploy", "send-keys": "upload-keys"}


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("nixlift.schemas").joinpath(f"{name}.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate(stdout: str) -> dict[str, Any]:
    """Parse a `--json` output and check it against its command's schema; returns it."""
    doc = json.loads(stdout)
    assert isinstance(doc, dict), f"a --json output is one object, not {type(doc).__name__}"
    assert doc.get("version") == 1, doc
    name = "error" if "error" in doc and "hosts" not in doc else doc["command"]
    jsonschema.validate(doc, schema(_SCHEMA_OF.get(name, name)))
    return doc
