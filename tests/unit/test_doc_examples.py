"""The examples in docs/ that show Python code and its output still print that output.

The convention, for every file in docs/: an *example* is a fenced ```python
block followed directly (blank lines aside) by a fenced ```output block. The
code runs as a script of its own, in a fresh interpreter started in the
repository, and what it prints, stdout and stderr together as a terminal shows
them, must be the output block. In the output block:

- ``...`` stands for any text, several lines included (as doctest's ELLIPSIS):
  for a URN, or a traceback shown shortened;
- a script that exits with a non-zero status ends with the line
  ``exit status: N``.

A ```python block without an ```output block is not run (docs/PROTOCOL.md's
client needs a running server, for one). docs/SUPERVISION.md promises that every
example runs as it stands, so each of its ```python blocks must have an output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EVERY_BLOCK_RUNS = {"SUPERVISION.md"}
TIMEOUT_S = 60

_FENCE = re.compile(r"^```(?P<info>\S*)\n(?P<body>.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    info: str
    body: str
    line: int
    end: int


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    code: str
    output: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the line each starts on."""
    return [
        Block(
            match["info"],
            match["body"],
            text.count("\n", 0, match.start()) + 1,
            match.end(),
        )
        for match in _FENCE.finditer(text)
    ]


def examples(doc: Path) -> list[Example]:
    text = doc.read_text()
    found = blocks(text)
    pairs = zip(found, [*found[1:], None], strict=True)
    return [
        Example(doc.name, code.line, code.body, output.body)
        for code, output in pairs
        if code.info == "python"
        and output is not None
        and output.info == "output"
        and not text[code.end : text.index("```", code.end)].strip()
    ]


ALL_EXAMPLES = [example for doc in sorted(DOCS.glob("*.md")) for example in examples(doc)]


def run(code: str) -> str:
    """What `code` prints as a script, stdout and stderr interleaved."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    printed = result.stdout
    if result.returncode != 0:
        printed += f"exit status: {result.returncode}\n"
    return printed


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n"))


def matches(expected: str, printed: str) -> bool:
    """Whether `printed` is `expected`, each ``...`` in it standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in _normal(expected).split("..."))
    return re.fullmatch(pattern, _normal(printed), re.DOTALL) is not None


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=str)
def test_an_example_prints_its_output(example: Example) -> None:
    printed = run(example.code)
    if not matches(example.output, printed):
        assert _normal(printed) == _normal(example.output), (
            f"{example} no longer prints what the doc shows (``...`` matches anything)"
        )


@pytest.mark.parametrize("name", sorted(EVERY_BLOCK_RUNS))
def test_every_python_block_of_the_doc_is_an_example_that_runs(name: str) -> None:
    doc = DOCS / name
    shown = [block.line for block in blocks(doc.read_text()) if block.info == "python"]
    run_lines = [example.line for example in examples(doc)]
    assert shown == run_lines, (
        f"{name}: each ```python block must be followed by an ```output block; "
        f"these are not: {sorted(set(shown) - set(run_lines))}"
    )


def test_ellipsis_stands_for_any_text_and_nothing_else() -> None:
    assert matches("a\n...\nd", "a\nb\nc\nd")
    assert matches("urn:uuid:...)", "urn:uuid:46db-40ae)")
    assert not matches("a\nd", "a\nb\nd")
    assert not matches("a (1)", "a (2)")
