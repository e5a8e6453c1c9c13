"""The figures the README and docs/ quote are the template's, the ASL's and the code's, and no test count.

- The figures the docs quote (parameter defaults and what follows from them, the state machine's timeout and
  retries, batch sizes and bounds in the code) are read from the template, the ASL and the code.
- No document quotes a test count or a test duration: `make test` prints them.

Pure text checks, without the demo run of test_docs.py (whose page helpers they share).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from emulator import diagram
from test_docs import PAGES, README, ROOT, text

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
    import plan_run
    import reading
    import report
    import report_run
    import run_records

    from bench import measure
    from emulator import credential_report

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
        "store window minutes": int(decisions.STORE_WINDOW.total_seconds() // 60),
        "full read days": decisions.FULL_READ_DAYS,
        "report wait minutes": sum(reading.REPORT_WAITS) // 60,
        "report wait margin minutes": plan_run.REPORT_WAIT_MARGIN // 60,
        "credential report lifetime hours": int(credential_report.REPORT_LIFETIME.total_seconds() // 3600),
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
    ("children that plan", r"one child per (\d+) users that may need action \|", ("users per plan batch",)),
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
    ("the store window", r"within (\d+) minutes", ("store window minutes",)),
    ("the full reads", r"within (\w+) daily runs", ("full read days",)),
    ("the wait for a report", r"(?:waiting up to|waits\s+at most about) (\w+) minutes", ("report wait minutes",)),
    ("the wait's margin", r"(?:with (\w+) minutes of the Lambda's time left|has (\w+) minutes left)",
     ("report wait margin minutes", "report wait margin minutes")),
    ("the report's age", r"up to (\w+) hours old", ("credential report lifetime hours",)),
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
    (examples,) = set(re.findall(r"(\w+)\s+reproducible\s+examples\s+of\s+one\s+account\s+and\s+(\w+)\s+of\s+an\s+organization", developing))
    configured = re.findall(r"max_examples=(\d+)", (ROOT / "tests" / "test_model.py").read_text())
    assert [number(e) for e in examples] == [int(c) for c in configured]

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
