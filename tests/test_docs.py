"""One source for every figure the README and docs/ quote, and links that lead somewhere: the demo and the exit codes.

- The demo sample in the README is what `python -m emulator` prints: an excerpt of consecutive lines, `...`
  marking each cut, every character the same but timings (key ids are reproducible: emulator/deterministic.py).
- The exit codes the docs list are the ones `python -m emulator --help` prints.

The other checks of the docs need no demo run, so they live beside this file (the demo runs once, here):
test_docs_figures.py (the figures the docs quote; no test count or duration) and test_docs_links.py (links,
anchors and the paths and names the docs cite). The pages and their text are read through this file's helpers.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from emulator import cli, stack
from test_emulator_cli import demo  # noqa: F401  the demo, run once per module (a fixture)

ROOT = stack.ROOT
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
SAMPLE_MARKER = "<!-- demo-sample:"
CUT = "..."


def text(page: Path) -> str:
    return page.read_text()


def prose(page: Path) -> str:
    """The page without its fenced code blocks: what a reader takes as the page's own words and links."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text(page), flags=re.M | re.S)


# --- the demo sample ------------------------------------------------------------------------------------------


def readme_sample() -> list[str]:
    """The fenced block after the README's demo-sample marker, as lines."""
    readme = text(README)
    assert SAMPLE_MARKER in readme, f"README.md has lost its {SAMPLE_MARKER} ... --> marker before the demo sample"
    after = readme[readme.index(SAMPLE_MARKER) :].split("\n", 1)[1]
    assert after.startswith("```\n"), "the demo sample's fenced block must follow its marker"
    return after[4 : after.index("\n```", 3)].split("\n")


def masked(line: str) -> str:
    """A line with its timings masked: the timeline's milliseconds, and any "N ms" or "N s"."""
    line = re.sub(r"^( *)\d+(?=  \S)", r"\1<ms>", line)
    return re.sub(r"\b\d+(\.\d+)? ?(ms|s|seconds)\b", "<time>", line)


def find_excerpt(segments: list[list[str]], output: list[str], start: int = 0) -> bool:
    """Whether the segments appear in the output in order, each as consecutive lines (timings masked)."""
    if not segments:
        return True
    first, rest = [masked(line) for line in segments[0]], segments[1:]
    for at in range(start, len(output) - len(first) + 1):
        if [masked(line) for line in output[at : at + len(first)]] == first and find_excerpt(rest, output, at + len(first)):
            return True
    return False


def segments_of(sample: list[str]) -> list[list[str]]:
    segments, current = [], []
    for line in sample:
        if line == CUT:
            segments.append(current)
            current = []
        else:
            current.append(line)
    segments.append(current)
    assert all(segments), "the demo sample has an empty excerpt: two cuts in a row, or a cut at an end"
    return segments


def test_the_readme_demo_sample_is_the_real_output_of_make_run(demo):  # noqa: F811
    exit_code, shown = demo
    output = shown.split("\n")
    assert exit_code == 0
    (days,) = re.findall(r"runs the daily schedule on day ([\d, and]+)\.", text(README))
    assert re.findall(r"^Day (\d+): scheduled run", shown, re.M) == re.findall(r"\d+", days)

    segments = segments_of(readme_sample())

    for number, segment in enumerate(segments, 1):  # each excerpt alone first, for a message that says which
        assert find_excerpt([segment], output), (
            f"excerpt {number} of the README's demo sample is not in the output of `python -m emulator`:\n"
            + "\n".join(segment)
            + "\nrun `make run` and copy the real lines into the README"
        )
    assert find_excerpt(segments, output), (
        "each excerpt of the README's demo sample is in the output of `python -m emulator`, but not in this order"
    )


def test_the_sample_check_sees_a_changed_figure_a_changed_key_and_a_wrong_order():
    output = [
        "The account:",
        "  ci-deployer  AKIAAAAAAAAAAAAAAAAA  Active  81d",
        "Day 0: run-001 SUCCEEDED, 38 states entered",
        "  new key AKIABBBBBBBBBBBBBBBB stored, AKIAAAAAAAAAAAAAAAAA stays Active",
        "       0  Plan the run  Task",
        "     189  Plan each batch  Map",
        "Day 7: run-002 SUCCEEDED, 42 states entered",
        "  AKIABBBBBBBBBBBBBBBB is 7 days old",
    ]

    def found(sample: str) -> bool:
        return find_excerpt(segments_of(sample.split("\n")), output)

    assert found("Day 0: run-001 SUCCEEDED, 38 states entered\n...\nDay 7: run-002 SUCCEEDED, 42 states entered")
    assert found("  new key AKIABBBBBBBBBBBBBBBB stored, AKIAAAAAAAAAAAAAAAAA stays Active\n"
                 "       5  Plan the run  Task\n...\n  AKIABBBBBBBBBBBBBBBB is 7 days old")  # a timing
    assert not found("Day 0: run-001 SUCCEEDED, 46 states entered")  # a figure
    assert not found("  new key AKIABBBBBBBBBBBBBBBB stored, AKIADDDDDDDDDDDDDDDD stays Active")  # a key of the fixture
    assert not found("  new key AKIACCCCCCCCCCCCCCCC stored, AKIAAAAAAAAAAAAAAAAA stays Active")  # a new key
    assert not found("Day 7: run-002 SUCCEEDED, 42 states entered\n...\nDay 0: run-001 SUCCEEDED, 38 states entered")
    assert not found("Day 0: run-001 SUCCEEDED, 38 states entered\nDay 7: run-002 SUCCEEDED, 42 states entered")


# --- exit codes -----------------------------------------------------------------------------------------------


def help_exit_codes() -> dict[str, str]:
    """{code: meaning} from the "exit status" section of `python -m emulator --help`."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli.main(["--help"]) == 0
    section = out.getvalue().split("\nexit status", 1)[1].split("\n\n", 1)[0]
    codes, current = {}, None
    for line in section.splitlines()[1:]:
        if m := re.match(r"^  (\d+)  (.*)$", line):
            current = m[1]
            codes[current] = m[2]
        elif line.startswith("     ") and current is not None:
            codes[current] += " " + line.strip()
        else:
            current = None
    return codes


def first_clause(meaning: str) -> str:
    return re.split(r"[,:;(.]", meaning, maxsplit=1)[0].strip()


def documented_exit_codes() -> dict[str, dict[str, str]]:
    """{page: {code: meaning}} for every "| Exit status | Meaning |" table."""
    found = {}
    for page in PAGES:
        for table in re.findall(r"^\| Exit status \| Meaning \|\n\|[-|]+\|\n((?:\|.*\n)+)", text(page), re.M):
            rows = re.findall(r"^\| `(\d+)` \| (.*) \|$", table, re.M)
            found[page.relative_to(ROOT).as_posix()] = dict(rows)
    return found


def test_the_exit_codes_the_docs_list_are_the_ones_help_prints():
    printed, documented = help_exit_codes(), documented_exit_codes()

    assert set(printed) == {"0", "1", "2", "3", "4"}, printed  # the parser itself, checked once
    assert documented, "no document lists the exit codes in a | Exit status | Meaning | table"
    for page, codes in documented.items():
        assert set(codes) == set(printed), f"{page} lists exit codes {sorted(codes)}, --help prints {sorted(printed)}"
        for code, meaning in codes.items():
            assert first_clause(meaning) == first_clause(printed[code]), (page, code, meaning, printed[code])


def test_every_exit_status_a_page_names_is_one_help_prints():
    printed = help_exit_codes()
    for page in PAGES:
        for code in re.findall(r"\b[Ee]xit(?:s| status| code)? `?(\d+)`?", text(page)):
            assert code in printed, f"{page.name} names exit status {code}, which --help does not print"
