"""Which machines a command acts on: `--on`/`--include`/`--exclude` (names, globs, @tags), and
morph's `--tagged`, `--skip`, `--every`, `--limit`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_GLOB_CHARS = set("*?[")
# Characters with a meaning in POSIX extended regular expressions (what builtins.match speaks).
_ERE_SPECIAL = set(".^$+(){}|\\")


@dataclass(frozen=True)
class Pattern:
    """One --on pattern: a name, a glob or @tag."""

    text: str

    @property
    def kind(self) -> str:
        if self.text.startswith("@"):
            return "tag"
        if _GLOB_CHARS & set(self.text):
            return "regex"
        return "name"

    def to_request(self) -> dict[str, str]:
        kind = self.kind
        if kind == "tag":
            return {"kind": kind, "value": self.text[1:]}
        if kind == "regex":
            return {"kind": kind, "value": glob_to_ere(self.text)}
        return {"kind": kind, "value": self.text}


def glob_to_ere(glob: str) -> str:
    """Translate a shell glob (`*`, `?`, `[…]`) into an ERE matching the whole name."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append("\\[")
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body + "]")
                i = end
        elif c in _ERE_SPECIAL:
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def split_patterns(values: Iterable[str]) -> tuple[Pattern, ...]:
    """`--on a,b --on @web` → three patterns; empty items are dropped."""
    return tuple(
        Pattern(item.strip()) for value in values for item in value.split(",") if item.strip()
    )


@dataclass(frozen=True)
class Selection:
    """Which machines a command works on (--on, --exclude, --tagged, …)."""

    #: None selects every machine
    include: tuple[Pattern, ...] | None = None
    exclude: tuple[Pattern, ...] = ()
    #: morph's --tagged: only machines with every one of these tags
    tagged: tuple[str, ...] = ()
    #: morph's --skip N, --every N, --limit N, applied (in this order) to the machines left, in
    #: the network's deploy order (network.ordering.tags first)
    skip: int = 0
    every: int = 1
    limit: int = 0

    @classmethod
    def from_args(
        cls,
        on: Iterable[str],
        exclude: Iterable[str],
        *,
        tagged: Iterable[str] = (),
        skip: int = 0,
        every: int = 1,
        limit: int = 0,
    ) -> Selection:
        include = split_patterns(on)
        tags = tuple(t.strip() for value in tagged for t in value.split(",") if t.strip())
        return cls(include or None, split_patterns(exclude), tags, skip, every, limit)

    @property
    def names_machines(self) -> bool:
        """Whether the command line said which machines (colmena's node filter)."""
        return self.include is not None or bool(self.tagged)

    def to_request(self) -> dict[str, Any]:
        return {
            "include": None if self.include is None else [p.to_request() for p in self.include],
            "exclude": [p.to_request() for p in self.exclude],
            "tagged": list(self.tagged),
            "skip": self.skip,
            "every": self.every,
            "limit": self.limit,
        }
