"""The test bed's error: sandbox hosts could not be started, stopped or inspected."""

from __future__ import annotations

from nixlift.errors import NixliftError


class SandboxError(NixliftError):
    """Local sandbox hosts could not be started, stopped or inspected.

    A NixliftError, so that it carries a `hint` and a `host` and is reported like nixlift's
    own errors (`error: …` / `hint: …`, exit status 1).
    """
