"""What the README shows, read back, so that tests hold it to what the platform does.

- `<!-- settings: NAME -->` … `<!-- /settings -->` holds the table of variables of the
  settings class NAME (`python -m penguins_platform settings` prints them all).
- `<!-- output: NAME -->` before a fenced block marks output that a test compares with what a
  command printed. `…` in the block stands for text that differs between runs (a path; with
  the hex digits before it, a run id: `0f897fe9-…`); everything else must be as shown.
- `<!-- command: NAME -->` before a fenced block marks a command that a test runs as shown.
"""

from __future__ import annotations

import re

from penguins_platform_tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
_TABLE = re.compile(r"<!-- settings: (\w+) -->\n(.*?)\n<!-- /settings -->", re.S)
_BLOCK = r"<!-- {kind}: ([\w-]+) -->\n```\w*\n(.*?)\n```"


def settings_tables() -> dict[str, str]:
    """The README's tables of variables, by settings class."""
    return {name: table.strip() for name, table in _TABLE.findall(README.read_text())}


def _pattern(shown_text: str) -> str:
    """A regular expression for text as the README shows it: `…`, with any hex digits of an
    example id before it, stands for any text."""
    return ".*?".join(map(re.escape, re.split(r"[0-9a-f-]*…", shown_text)))


def shown(kind: str, name: str) -> str:
    """The README's block `name` of `kind` (output, command)."""
    blocks = dict(re.findall(_BLOCK.format(kind=kind), README.read_text(), re.S))
    assert name in blocks, f"README.md has no '<!-- {kind}: {name} -->' block"
    return blocks[name]


def shown_json(name: str) -> object:
    """The README's JSON output block `name`, parsed."""
    import json

    return json.loads(shown("output", name))


def matches_shown(shown_value: object, actual: object) -> bool:
    """Whether `actual` is the JSON value the README shows: a text with `…` matches any text
    of that shape, a number as shown matches one that rounds to it."""
    if isinstance(shown_value, dict) and isinstance(actual, dict):
        return shown_value.keys() == actual.keys() and all(
            matches_shown(value, actual[key]) for key, value in shown_value.items()
        )
    if isinstance(shown_value, list) and isinstance(actual, list):
        return len(shown_value) == len(actual) and all(map(matches_shown, shown_value, actual))
    if isinstance(shown_value, str) and "…" in shown_value and isinstance(actual, str):
        return re.fullmatch(_pattern(shown_value), actual) is not None
    if isinstance(shown_value, float) and isinstance(actual, float):
        decimals = len(repr(shown_value).split(".")[1])
        return round(actual, decimals) == shown_value
    return shown_value == actual


def assert_shows(
    name: str, printed: str, replace: dict[str, str] | None = None, line: int | None = None
) -> None:
    """Fail unless `printed` is what the README's output block `name` shows, line for line,
    with `…` in the block matching any text. `replace` swaps text of the README's example
    for what differs here (a port the test chose, this Python's version); `line` compares
    `printed` with that line of the block alone, for a block that gathers several cases."""
    block = shown("output", name)
    for old, new in (replace or {}).items():
        block = block.replace(old, new)
    shown_lines = block.splitlines() if line is None else [block.splitlines()[line]]
    lines = printed.strip("\n").splitlines()
    pattern = [re.compile(_pattern(line) + r"\Z") for line in shown_lines]
    mismatch = [
        f"README: {want}\nprinted: {got}"
        for want, got, match in zip(shown_lines, lines, pattern, strict=False)
        if not match.match(got)
    ]
    assert len(shown_lines) == len(lines) and not mismatch, (
        f"README.md's output '{name}' is not what the command printed; update the README:\n"
        + "\n".join(mismatch or [f"README shows {len(shown_lines)} lines, printed {len(lines)}"])
        + "\n--- printed ---\n"
        + printed
    )
