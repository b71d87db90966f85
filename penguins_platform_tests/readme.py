"""What the README shows, read back, so that tests hold it to what the platform does.

- `<!-- settings: NAME -->` … `<!-- /settings -->` holds the table of variables of the
  settings class NAME (`python -m penguins_platform settings` prints them all).
- `<!-- output: NAME -->` before a fenced block marks output that a test compares with what a
  command printed. `…` in the block stands for text that differs between runs (a run id, a
  path); everything else must be as shown.
"""

from __future__ import annotations

import re

from penguins_platform_tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
_TABLE = re.compile(r"<!-- settings: (\w+) -->\n(.*?)\n<!-- /settings -->", re.S)
_OUTPUT = re.compile(r"<!-- output: ([\w-]+) -->\n```\w*\n(.*?)\n```", re.S)


def settings_tables() -> dict[str, str]:
    """The README's tables of variables, by settings class."""
    return {name: table.strip() for name, table in _TABLE.findall(README.read_text())}


def shown_output(name: str) -> str:
    """The README's output block `name`."""
    blocks = dict(_OUTPUT.findall(README.read_text()))
    assert name in blocks, f"README.md has no '<!-- output: {name} -->' block"
    return blocks[name]


def assert_shows(name: str, printed: str) -> None:
    """Fail unless `printed` is what the README's output block `name` shows, line for line,
    with `…` in the block matching any text."""
    shown = shown_output(name).splitlines()
    lines = printed.strip("\n").splitlines()
    pattern = [re.compile(".*?".join(map(re.escape, line.split("…"))) + r"\Z") for line in shown]
    mismatch = [
        f"README: {want}\nprinted: {got}"
        for want, got, match in zip(shown, lines, pattern, strict=False)
        if not match.match(got)
    ]
    assert len(shown) == len(lines) and not mismatch, (
        f"README.md's output '{name}' is not what the command printed; update the README:\n"
        + "\n".join(mismatch or [f"README shows {len(shown)} lines, printed {len(lines)}"])
        + "\n--- printed ---\n"
        + printed
    )
