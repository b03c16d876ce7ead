"""JSON Schemas of every command's `--json` output (docs/json.md)."""
