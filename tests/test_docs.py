"""One source for every figure the README and docs/ quote, and links that lead somewhere.

- The demo sample in the README is what `python -m emulator` prints: an excerpt of consecutive lines, `...`
  marking each cut, every character the same but timings (key ids are reproducible: emulator/deterministic.py).
- The exit codes the docs list are the ones `python -m emulator --help` prints.
- The figures the docs quote (parameter defaults and what follows from them, the state machine's timeout and
  retries, batch sizes and bounds in the code) are read from the template, the ASL and the code.
- No document quotes a test count or a test duration: `make test` prints them.
- Every relative link in README.md and docs/*.md leads to a file, and every anchor to a heading.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from emulator import cli, diagram, stack
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


# --- figures from the template, the ASL and the code ----------------------------------------------------------

TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
DEFAULTS = {name: str(spec.get("Default", "")) for name, spec in TEMPLATE["Parameters"].items()}
ASL = diagram.load()
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def number(figure: str) -> int:
    return NUMBERS[figure.lower()] if figure.lower() in NUMBERS else int(figure.replace(",", ""))


def default(name: str) -> int:
    return int(DEFAULTS[name])


def accepted(policy) -> bool:
    """Whether the rotation runs with these parameters, or refuses them (decisions.Policy.check)."""
    import decisions

    try:
        policy.check()
    except decisions.InvalidConfiguration:
        return False
    return True


def code_figures() -> dict[str, int]:
    import decisions
    import reading
    import report
    import report_run
    import run_records

    from bench import measure

    rotation_age = default("MaxKeyAgeDays") - default("InstallWindowDays") - decisions.COMPLIANCE_MARGIN.days
    install, recovery = default("InstallWindowDays"), default("RecoveryWindowDays")
    least_max_age = next(days for days in range(1, 400) if accepted(decisions.Policy.from_days(days, install, recovery)))
    least_unused_hours = next(h for h in range(100) if accepted(decisions.Policy.from_days(90, 7, 7, unused_hours=h)))
    source = Path(report_run.__file__).read_text()
    (put_events_threads,) = re.findall(r"ThreadPoolExecutor\((\d+)\)", source)
    return {
        "rotation age": rotation_age,
        "deactivation age": rotation_age + default("InstallWindowDays"),
        "compliance margin": decisions.COMPLIANCE_MARGIN.days,
        "least MaxKeyAgeDays past the windows": least_max_age - 2 * install - recovery,
        "day a held key reaches MaxKeyAgeDays": default("MaxKeyAgeDays") - rotation_age,
        "deletion day": default("InstallWindowDays") + default("RecoveryWindowDays"),
        "IAM calls in flight": default("ParallelBatches") * default("ParallelUsers"),
        "schedule slack minutes": int(decisions.SCHEDULE_SLACK.total_seconds() // 60),
        "IAM last-use delay hours": int(decisions.IAM_LAST_USED_DELAY.total_seconds() // 3600),
        "least UnusedHours": least_unused_hours,
        "tags per user": decisions.MAX_TAGS_PER_USER,
        "users per GetAccountAuthorizationDetails": reading.USERS_PER_PAGE,
        "users per plan batch": run_records.MAX_BATCH_USERS,
        "KiB per plan batch": run_records.MAX_BATCH_BYTES // 1024,
        "users per act batch": run_records.MAX_ACT_BATCH_USERS,
        "users in the report summary": report.MAX_SUMMARY_USERS,
        "users in full": report.MAX_DETAILED_USERS,
        "changes per PutEvents": report_run.PUT_EVENTS_BATCH,
        "PutEvents tries": report_run.PUT_EVENTS_TRIES,
        "PutEvents at once": int(put_events_threads),
        "payload bound KiB": measure.PAYLOAD_LIMIT_BYTES // 1024,
        "run history bound": measure.PARENT_EVENT_LIMIT,
        "timeout hours": ASL["TimeoutSeconds"] // 3600,
        "functions": sum(r["Type"] == "AWS::Serverless::Function" for r in TEMPLATE["Resources"].values()),
    }


# (what, a pattern whose groups are figures, the figure each group must be: a template parameter's default, a name
# in code_figures(), "parameter" for a group naming the parameter whose default the next group quotes, or None).
# Each pattern must match somewhere, so that a reworded sentence comes back here.
PARAMETER = "|".join(sorted(DEFAULTS, key=len, reverse=True))
FIGURES = [
    ("a parameter's default, in brackets",  # not the product `ParallelBatches` x `ParallelUsers` (20)
     rf"(?<!x )(?<!x\n)(?<!x `)(?<!x\n`)`?\b({PARAMETER})\b`? \((?:default )?(\d[\d,]*)\)", ("parameter", "default")),
    ("a parameter's default, in words", rf"`({PARAMETER})` is `(\d+)` by default", ("parameter", "default")),
    ("the install window's default", r"install window\**\s*\((\d+) days", ("InstallWindowDays",)),
    ("the recovery window's default", r"recovery window\**\s*\((\d+) days", ("RecoveryWindowDays",)),
    ("the maximum age", r"no Active key reaches (\d+) days", ("MaxKeyAgeDays",)),
    ("the rotation age", r"rotated at (\d+) days", ("rotation age",)),
    ("the rotation age with the defaults", r"\((\d+) with the defaults\)", ("rotation age",)),
    ("the rotation age in the lifecycle", r"current key A reaches (\d+) days", ("rotation age",)),
    ("the next rotation in the lifecycle", r"day (\d+) +B reaches (\d+) days", ("rotation age", "rotation age")),
    ("the compliance margin", r"`?InstallWindowDays`? - (\d+)\b", ("compliance margin",)),
    ("the compliance margin in the lifecycle", r"InstallWindowDays \(\d+\) - (\d+)\b", ("compliance margin",)),
    ("the compliance margin in days", r"deactivated (\d+) days before", ("compliance margin",)),
    ("the deactivation age", r"A is deactivated at (\d+) days", ("deactivation age",)),
    ("the shortest MaxKeyAgeDays", r"RecoveryWindowDays \+ (\d+)`", ("least MaxKeyAgeDays past the windows",)),
    ("the notice days", r"day -(\d+)\.\.0 +NoticeDays", ("NoticeDays",)),
    ("the install window in the lifecycle", r"day 0-(\d+) +install window", ("InstallWindowDays",)),
    ("the deactivation day", r"deactivated on day (\d+)", ("InstallWindowDays",)),
    ("the recovery window in the lifecycle", r"day (\d+)-(\d+) +recovery window", ("InstallWindowDays", "deletion day")),
    ("the deletion day", r"day (\d+) +B is (\d+) days old and A has been Inactive", ("deletion day", "deletion day")),
    ("a held key at the maximum age", r"day (\d+) +a still-used A reaches MaxKeyAgeDays", ("day a held key reaches MaxKeyAgeDays",)),
    ("IAM calls in flight", r"`ParallelBatches` x\s+`ParallelUsers` \((\d+)\)", ("IAM calls in flight",)),
    ("the age slack", r"compared with (\d+) minutes' slack", ("schedule slack minutes",)),
    ("the least UnusedHours", r"\(at least (\d+): IAM reports", ("least UnusedHours",)),
    ("the least UnusedHours, in the decisions", r"`UnusedHours` is at least (\d+)", ("least UnusedHours",)),
    ("IAM's last-use delay", r"up to (?:about )?(\w+) hours late", ("IAM last-use delay hours",)),
    ("IAM's tags per user", r"IAM's (\d+) tags", ("tags per user",)),
    ("users a bulk read", r"up to ([\d,]+) users a call", ("users per GetAccountAuthorizationDetails",)),
    ("batch sizes", r"in batches of (\d+) and (\d+)", ("users per plan batch", "users per act batch")),
    ("the plan batch", r"batches of at most (\d+) \(and (\d+) KiB\)", ("users per plan batch", "KiB per plan batch")),
    ("the act batch", r"users to act on in batches of (\d+)", ("users per act batch",)),
    ("children that plan", r"one child per (\d+) users \|", ("users per plan batch",)),
    ("children that act", r"one child per (\d+) users acted on", ("users per act batch",)),
    ("the report's bounds", r"at most (\d+) users \(problems first, the first (\d+) in full\)",
     ("users in the report summary", "users in full")),
    ("lifecycle events per call", r"a `PutEvents` per (\w+) changes(?: \((\w+) at once\))?",
     ("changes per PutEvents", "PutEvents at once")),
    ("PutEvents tries", r"refuses events \(after (\w+) tries\)", ("PutEvents tries",)),
    ("the payload bound", r"\(bound (\d+) KiB", ("payload bound KiB",)),
    ("the run's history bound", r"history events \(bound ([\d,]+)\)", ("run history bound",)),
    ("the state machine's timeout", r"times out\s+after (\d+) hours", ("timeout hours",)),
    ("the state machine's timeout, a hung run", r"Times out after (\d+) hours", ("timeout hours",)),
    ("the state machine's timeout, in the limits", r"`TimeoutSeconds` is (\d+) hours", ("timeout hours",)),
    ("the state machine's timeout, in words", r"(\d+)-hour timeout", ("timeout hours",)),
    ("the stack's functions", r"the stack's (\w+) functions", ("functions",)),
]


@pytest.fixture(scope="module")
def figures() -> dict[str, int]:
    return code_figures()


@pytest.mark.parametrize("what, pattern, names", FIGURES, ids=[what for what, _, _ in FIGURES])
def test_each_figure_the_docs_quote_is_the_codes(what, pattern, names, figures):
    matches = [(page.relative_to(ROOT).as_posix(), m) for page in PAGES for m in re.finditer(pattern, text(page))]
    assert matches, f"no document quotes {what} as /{pattern}/ any more: update this test with the new wording"
    for page, match in matches:
        for group, name in enumerate(names, 1):
            if match[group] is None or name in ("parameter", None):
                continue
            expected = default(match[1]) if name == "default" else default(name) if name in DEFAULTS else figures[name]
            assert number(match[group]) == expected, (
                f"{page} quotes {what} as {match[group]!r} in {match[0]!r}; the template or the code says {expected}"
            )


def tasks(machine: dict):
    """Every Task state of the ASL, nested ones included: (name, state)."""
    for name, state in machine["States"].items():
        if state["Type"] == "Task":
            yield name, state
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from tasks(inner)


def test_the_retries_the_docs_quote_are_the_asls():
    quoted = re.findall(
        r"full jitter \((\d+) s, up\s+to (\d+) s, (\d+) attempts; (\d+) for SNS and SES, (\d+) for deleting an unstored key\)",
        text(ROOT / "docs" / "reliability.md"),
    )
    assert len(quoted) == 1, "docs/reliability.md no longer quotes the retries as this test reads them"
    first, most, usual, notify, unstored = map(int, quoted[0])
    attempts = Counter()
    for task, state in tasks(ASL):
        retries = [r for r in state.get("Retry", []) if r["ErrorEquals"] != ["KeyNotYetAccepted"]]  # IAM propagation
        assert retries, f"{task} does not retry"
        for retry in retries:
            assert (retry["IntervalSeconds"], retry["MaxDelaySeconds"], retry.get("JitterStrategy")) == (first, most, "FULL"), task
            if re.search(r":(sns|ses):", state["Resource"]):
                assert retry["MaxAttempts"] == notify, task
            elif task == "Delete unstored key":
                assert retry["MaxAttempts"] == unstored, task
            else:
                assert retry["MaxAttempts"] == usual, task
            attempts[retry["MaxAttempts"]] += 1
    assert attempts.most_common(1)[0][0] == usual


def test_the_model_and_soak_figures_are_their_settings():
    developing = text(ROOT / "docs" / "developing.md") + text(ROOT / "docs" / "reliability.md")
    (examples,) = set(re.findall(r"(\w+) reproducible examples", developing))
    (configured,) = re.findall(r"max_examples=(\d+)", (ROOT / "tests" / "test_model.py").read_text())
    assert number(examples) == int(configured)

    from bench import soak

    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit):
        soak.main(["--help"])
    shown = " ".join(out.getvalue().split())
    per_example, at_least = re.search(r"of up to (\d+) steps each until at least ([\d,]+) steps", developing).groups()
    assert f"--steps-per-example STEPS_PER_EXAMPLE the longest a month-long story runs (default {per_example})" in shown
    assert f"(default {at_least})" in shown and "explore at least this many steps" in shown


def test_the_tags_and_secret_names_the_docs_show_are_the_defaults():
    tag, value, prefix = DEFAULTS["UserTagKey"], DEFAULTS["UserTagValue"], DEFAULTS["SecretNamePrefix"]
    readme = text(README)
    assert f"--tags Key={tag},Value={value}" in readme
    assert f"`{prefix}<user>`" in readme
    for page in PAGES:
        for shown_tag, shown_value in re.findall(r"`(\w+)=(\w+)`", text(page)):
            if shown_tag == tag:
                assert shown_value == value, page.name


# --- test counts and durations ---------------------------------------------------------------------------------

TEST_FIGURE = re.compile(
    r"\b\d[\d,]*\s+(?:tests|test cases|passed|failed)\b"
    r"|\btests?\b[^.\n]{0,60}?\b(?:in|take|takes|took|about)\s+(?:about\s+)?\d+(?:\.\d+)?\s*(?:s|seconds|minutes|min)\b",
    re.I,
)


def test_no_document_quotes_a_test_count_or_duration():
    for page in [*PAGES, ROOT / "CHANGELOG.md"]:
        quoted = TEST_FIGURE.findall(text(page))
        assert quoted == [], f"{page.name} quotes {quoted}: say that `make test` prints them instead"


def test_the_test_figure_check_sees_counts_and_durations():
    assert TEST_FIGURE.search("make test runs 689 tests, about 95 s")
    assert TEST_FIGURE.search("the tests take about 3 minutes")
    assert TEST_FIGURE.search("412 passed")
    assert not TEST_FIGURE.search("`make test` prints how many tests ran and how long they took")


# --- links ----------------------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), Counter()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page), re.M):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def without_generated_diagram(words: str) -> str:
    begin, end = words.find(diagram.BEGIN), words.find(diagram.END)
    return words if begin < 0 else words[:begin] + words[end:]


def broken_links(page: Path, words: str) -> list[str]:
    broken = []
    for target in LINK.findall(re.sub(r"`[^`\n]*`", "", words)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_every_anchor_to_a_heading(page):
    assert broken_links(page, without_generated_diagram(prose(page))) == [], page.name


def test_the_generated_diagram_links_from_its_page():
    page = ROOT / "docs" / "how-it-decides.md"
    block = diagram.extract_block(text(page))

    assert block is not None and broken_links(page, block) == []


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "a.md"
    page.write_text("# A page\n\n## With `code`: and more\n\n```sh\n# not a heading\n```\n")

    assert broken_links(page, "[ok](a.md#with-code-and-more) [ok](#a-page) [web](https://example.com)") == []
    assert broken_links(page, "[x](b.md)") == ["b.md: no such file"]
    assert broken_links(page, "[x](#not-a-heading)") == ["#not-a-heading: no heading with that anchor"]
    assert broken_links(page, "[x](../README.md)") == ["../README.md: no such file"]


def test_every_page_in_docs_is_linked_from_the_readme():
    readme = text(README)
    unlinked = [p.name for p in DOCS if f"](docs/{p.name})" not in readme]

    assert unlinked == [], "add each page to the README's Documentation table"


def test_the_layout_names_only_paths_that_exist():
    developing = text(ROOT / "docs" / "developing.md")
    layout = developing[developing.index("## Layout") :].split("```")[1]
    paths = [line.split()[0] for line in layout.splitlines() if line and not line.startswith(" ")]

    assert len(paths) > 10 and [p for p in paths if not (ROOT / p).exists()] == []


def test_the_capabilities_an_install_acknowledges_are_the_ones_the_template_needs():
    from test_sam_cli import SAR_INSTALL_CAPABILITIES  # checked there against the template's resources

    deploying = text(ROOT / "docs" / "deploying.md")
    (command,) = re.findall(r"create-cloud-formation-change-set.*?--capabilities ((?:CAPABILITY_\w+ ?)+)", deploying, re.S)
    assert set(command.split()) == SAR_INSTALL_CAPABILITIES
    for page in (ROOT / "docs" / "deploying.md", ROOT / "docs" / "serverless-application-repository.md"):
        (said,) = re.findall(r"the installer acknowledges\s+`(CAPABILITY_\w+)` and `(CAPABILITY_\w+)`", text(page))
        assert set(said) == SAR_INSTALL_CAPABILITIES, page.name


def test_the_serverless_application_repository_page_is_the_readme_sar_shows():
    sar = TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]
    page = ROOT / sar["ReadmeUrl"]

    assert page == ROOT / "docs" / "serverless-application-repository.md"
    assert sar["HomePageUrl"] in text(page)  # the SAR console cannot follow the page's relative links


# --- nothing outside the repository ---------------------------------------------------------------------------


def test_no_document_points_outside_the_repository():
    for page in [*PAGES, ROOT / "CHANGELOG.md"]:
        for target in LINK.findall(text(page)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                resolved = (page.parent / target.partition("#")[0]).resolve()
                assert resolved == ROOT or ROOT in resolved.parents, f"{page.name} links outside the repository: {target}"
        assert not re.search(r"\.\./shared/|\bnotes/", text(page)), f"{page.name} points at notes outside the repository"
        assert not re.search(r"\b(?:issue|pull request|PR)s? #?\d+\b", text(page)), f"{page.name} names an issue tracker's number"


def test_every_test_the_threat_model_cites_exists():
    """The threat model names the test that proves each control: a renamed or deleted test must not leave a
    control citing a proof that no longer runs."""
    modules = {path.stem for path in (ROOT / "tests").glob("test_*.py")}
    cited = set(re.findall(r"\b(test_\w+)\b", text(ROOT / "docs" / "threat-model.md"))) - modules
    defined = {name for path in (ROOT / "tests").glob("test_*.py") for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    assert cited and cited <= defined, sorted(cited - defined)


def test_every_file_the_docs_name_in_backticks_exists():
    """A page that names `tests/test_x.py` or `emulator/y.py` points a reader at it: renamed or split, the page
    must follow (a glob such as `tests/test_safety_*.py` must still match)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        (page.name, path)
        for page in pages
        for path in re.findall(r"`((?:tests|emulator|functions|bench|tools|member|fixtures|statemachine)/[\w./*-]+)`", text(page))
    }
    missing = sorted((page, path) for page, path in named if not list(ROOT.glob(path)))
    assert named and missing == []
