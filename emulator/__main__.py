"""Run the rotation offline: the real template, state machine and Lambda on an emulated account.

    python -m emulator                      # the demo: fixtures/demo-account.json, runs on day 0, 7, 14, 21
    python -m emulator run --account my-account.json --event events/on-demand-rotation.json
    python -m emulator diagram --write README.md

``python -m emulator --help`` explains the commands, the account fixture format, --json and the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import traceback
from pathlib import Path

import decisions
import report
from botocore.exceptions import BotoCoreError, ClientError

from . import account, diagram, history, stack
from .runner import Emulator, Run

DEMO_FIXTURE = stack.ROOT / "fixtures" / "demo-account.json"
DEMO_DAYS = (0, 7, 14, 21)

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_BROKEN_PROMISE, EXIT_CRASH = 0, 1, 2, 3, 4

DESCRIPTION = """\
Run the rotation offline: template.yaml (through the SAM translator), statemachine/rotation.asl.json and the
Lambda functions on an emulated AWS account (moto), in one process. No AWS account is used."""

COMMANDS = """\
commands:
  demo      the default: seed the account, then run the daily schedule on each of --days, and print what each
            run did to each user, the keys and secret versions it changed, its email, and the first run's
            timeline; then check the invariants and scan everything published for a secret
  run       the same for one execution, with --event's JSON as the execution input
  diagram   print the state machine as a Mermaid flowchart, or --write it into a file between the markers
            <!-- state-machine-diagram:begin --> and <!-- state-machine-diagram:end --> (make diagram)

examples:
  python -m emulator                                   the demo (make run): days 0, 7, 14 and 21
  python -m emulator --days 0,90,97,104                the demo on other days (demo is the default command)
  python -m emulator run --event events/on-demand-rotation.json
  python -m emulator run --account my-account.json --event events/scheduled-run.json \\
      --param MaxKeyAgeDays=30 --param InstallWindowDays=3
  python -m emulator --json | jq '.runs[] | {name, status, error}'
  python -m emulator diagram --write README.md         (make diagram)
"""

EXIT_STATUS = """\
exit status (demo and run):
  0  every run SUCCEEDED, the invariants held and no secret appeared anywhere. A user reported BLOCKED
     or ATTENTION does not count against this: its run succeeds, as it does in AWS, and the email says
     what to do.
  1  a run did not succeed (FAILED: rejected input, or a user whose step failed, which raises the
     alarm in AWS); the invariants held and no secret leaked
  2  usage or input error: an unknown option, command or template parameter, a bad --days or --param,
     or an account fixture or event file that cannot be read or does not follow the format below.
     Nothing ran.
  3  an invariant was violated (AWSCURRENT is an Active key of its user; every key a run created is
     stored; no Active key is deleted) or a secret access key appeared in an output, cause, email or
     Lambda payload, whatever the runs' status
  4  the emulator itself crashed (the traceback is on stderr)
diagram exits 0, or 2 when the ASL cannot be read or the file has no markers.
"""

FIXTURE_FORMAT = """\
the account fixture (--account FILE, JSON; fixtures/demo-account.json is one):
  {
    "description": "...",                        optional, for people
    "start": "2026-01-05T06:00:00Z",             the clock when the account is seeded (ISO-8601 with a zone;
                                                 default: now): the demo's day 0, and the time of `run`
                                                 unless the execution input has a "time"
    "parameters": {"SenderEmail": "..."},        template parameter overrides; --param wins over them
    "verifiedEmails": ["rotation@example.com"],  SES identities verified in the account
    "users": [                                   the IAM users, created in this order
      {"name": "ci-deployer",                    required and unique: an IAM user name
       "path": "/",                              IAM path (default "/")
       "tags": {"KeyRotation": "enabled"},       user tags; rotation is opt-in by tag (UserTagKey)
       "note": "...",                            optional, for people
       "keys": [                                 at most 2, as IAM allows
         {"ageDays": 95,                         the key's age at "start", in days (default 0)
          "created": "2025-10-02T06:00:00Z",     or its exact creation time, instead of ageDays
          "status": "Active",                    "Active" (default) or "Inactive"
          "inSecret": true,                      store it in the user's secret <SecretNamePrefix><name> as
                                                 the workflow does (a version named for the key); of
                                                 several, the last is AWSCURRENT
          "inactiveDaysAgo": 3,                  write the inactive-since tag the workflow keeps for an
                                                 Inactive key: its recovery window started that long ago
          "lastUsed": "2026-01-04T10:00:00Z",    when a consumer last signed with it (GetAccessKeyLastUsed),
          "lastUsedHoursAgo": 3,                 or how long before "start"; "lastUsedBy": its service (s3)
          "usedUntilDay": 9,                     a consumer keeps signing with it, every hour, until that
                                                 many days after "start" (then it has moved on)
          "note": "..."}                         optional, for people
       ]}
    ]
  }
  Any other field is an error, so that a typo cannot pass unnoticed.
"""

JSON_FORMAT = """\
--json prints one JSON document on stdout instead of the report (progress and errors stay on stderr):
  {"command", "fixture", "event", "parameters",
   "accountBefore" / "accountAfter": {"time", "users": [{"name", "managed", "keys": [{"id", "status",
        "created", "ageDays"}], "secret", "secretVersions": [{"versionId", "stages", "keyId", "keyStatus"}]}]},
   "runs": [{"name", "day", "time", "input", "status", "error", "cause", "output", "statesEntered",
             "keys": {user: {"before": {keyId: status}, "after": {...}}},
             "secretVersions": {user: [...]}, "emails": [{"source", "recipients", "subject", "body"}]}],
   "failedRuns", "invariantViolations", "leakedTexts", "checkedTexts", "exitCode"}
  It holds what the runs published (outputs, causes, emails); "leakedTexts" counts those that held a secret
  access key (exit status 3), which are not repeated anywhere else.
"""


class InputError(Exception):
    """A bad fixture, event file or argument: reported in one line, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "demo")  # demo is the default command, options and all
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help (0), or a usage error argparse has already explained (2)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except (InputError, stack.TemplateError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        traceback.print_exc()
        print("error: the emulator crashed (the traceback above); this is a bug in the emulator", file=sys.stderr)
        return EXIT_CRASH


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    full = "\n".join((COMMANDS, EXIT_STATUS, FIXTURE_FORMAT, JSON_FORMAT))
    parser = argparse.ArgumentParser(prog="python -m emulator", description=DESCRIPTION, epilog=full, formatter_class=raw)
    commands = parser.add_subparsers(dest="command", metavar="{demo,run,diagram}", required=True)
    runs_epilog = "\n".join((EXIT_STATUS, FIXTURE_FORMAT, JSON_FORMAT))

    demo = commands.add_parser(
        "demo", help="walk an account through the lifecycle (the default)", formatter_class=raw, epilog=runs_epilog,
        description="Seed the account, then run the daily schedule on each of --days, as the EventBridge schedule "
        "starts it (its Input with the scheduled time).",
    )
    demo.add_argument("--days", type=_days, default=list(DEMO_DAYS), metavar="D,D,...",
                      help="days after the fixture's start to run the schedule on, in order (default: 0,7,14,21)")
    one = commands.add_parser(
        "run", help="run one execution input (an events/ file) against an account", formatter_class=raw,
        epilog=runs_epilog, description="Seed the account, then start one execution with --event's JSON as input.",
    )
    one.add_argument("--event", type=Path, required=True, metavar="FILE",
                     help="the execution input (JSON), e.g. events/scheduled-run.json; its \"time\" sets the clock")
    for sub in (demo, one):
        sub.add_argument("--account", type=Path, default=DEMO_FIXTURE, metavar="FILE",
                         help="account fixture (JSON, format below; default: fixtures/demo-account.json)")
        sub.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                         help="template parameter override, e.g. MaxKeyAgeDays=30; repeatable")
        sub.add_argument("--json", action="store_true", help="print one JSON document instead of the report")
    demo.set_defaults(handler=_demo)
    one.set_defaults(handler=_run)

    draw = commands.add_parser(
        "diagram", help="the state machine as a Mermaid flowchart", formatter_class=raw,
        description="Draw statemachine/rotation.asl.json as a Mermaid flowchart TD: Tasks with their calls,\n"
        "Choices with their conditions, Catches as dashed edges, each Map as a subgraph.",
    )
    draw.add_argument("--asl", type=Path, default=diagram.ASL, metavar="FILE",
                      help="the ASL to draw (default: statemachine/rotation.asl.json)")
    draw.add_argument("--write", type=Path, metavar="FILE",
                      help="replace the block between the markers in FILE (e.g. README.md) instead of printing")
    draw.set_defaults(handler=_diagram)
    return parser


def _days(text: str) -> list[int]:
    try:
        days = [int(d) for d in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of days, e.g. 0,7,14") from None
    if any(d < 0 for d in days) or days != sorted(days):
        raise argparse.ArgumentTypeError(f"{text!r}: days must be 0 or more, in order (the clock only moves forward)")
    return days


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. MaxKeyAgeDays=30")
    return name, value


# --- the commands -------------------------------------------------------------------------------------------


def _demo(args) -> int:
    fixture = read_fixture(args.account)
    return walk(fixture, args.days, dict(args.param), args.account, as_json=args.json)


def _run(args) -> int:
    fixture = read_fixture(args.account)
    execution_input = _read_json(args.event, "event")
    return run_one(fixture, execution_input, dict(args.param), args.event, args.account, as_json=args.json)


def _diagram(args) -> int:
    try:
        asl = diagram.load(args.asl)
    except (OSError, ValueError) as error:
        raise InputError(f"ASL {args.asl}: {error}") from None
    if args.write is None:
        print(diagram.mermaid(asl), end="")
        return EXIT_OK
    try:
        changed = diagram.write(args.write, args.asl)
    except (OSError, ValueError) as error:
        raise InputError(f"{args.write}: {error}") from None
    print(f"{args.write}: the state machine diagram {'is redrawn' if changed else 'was up to date'}")
    return EXIT_OK


def walk(fixture: dict, days: list[int], overrides: dict, source: Path, as_json: bool = False) -> int:
    """The demo: the daily schedule on each of ``days`` (days after the fixture's start)."""
    with Progress() as progress, _emulator(fixture, overrides, progress) as aws, _stdout_kept_for_json(as_json):
        before = {"time": decisions.format_time(aws.clock.now), "users": _account_state(aws, aws.users)}
        progress.clear()
        if not as_json:
            _print_header(aws, source)
            print(f"\nThe account on day 0 ({aws.clock.now:%Y-%m-%d}), before any run:")
            _print_account(before["users"])
        runs, records, day = [], [], 0
        for number, target in enumerate(days, 1):
            progress.show(f"run {number}/{len(days)} (day {target}) ...")
            aws.advance(target - day)
            day = target
            execution_input = aws.scheduled_input()
            run = aws.start(execution_input)
            runs.append(run)
            records.append(_run_record(aws, run, execution_input, day))
            progress.clear()
            if not as_json:
                _print_run(aws, run, f"Day {day}: scheduled run")
        if not as_json and runs:
            _print_timeline(runs[0])
        document = _finish(aws, runs, records, before, as_json)
    document.update(command="demo", fixture=_shown(source), event=None)
    return _emit(document, as_json)


def run_one(
    fixture: dict, execution_input, overrides: dict, source: Path, account_source: Path = DEMO_FIXTURE, as_json: bool = False
) -> int:
    """One execution with ``execution_input`` (any JSON: the state machine judges it)."""
    with Progress() as progress, _emulator(fixture, overrides, progress) as aws, _stdout_kept_for_json(as_json):
        if isinstance(execution_input, dict) and "time" in execution_input:
            with contextlib.suppress(ValueError):  # a bad time is the run's to reject, with its message
                aws.move_to(decisions.parse_time(execution_input["time"]))
        before = {"time": decisions.format_time(aws.clock.now), "users": _account_state(aws, aws.users)}
        progress.clear()
        if not as_json:
            _print_header(aws, account_source)
            print(f"\nThe account before the run ({decisions.format_time(aws.clock.now)}):")
            _print_account(before["users"])
        progress.show("run 1/1 ...")
        run = aws.start(json.dumps(execution_input))
        record = _run_record(aws, run, execution_input, None)
        progress.clear()
        if not as_json:
            _print_run(aws, run, f"Execution of {_shown(source)}")
            _print_timeline(run)
        document = _finish(aws, [run], [record], before, as_json)
    document.update(command="run", fixture=_shown(account_source), event=_shown(source))
    return _emit(document, as_json)


def _shown(path: Path) -> str:
    """A path as people read it: relative to the current directory when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _emulator(fixture: dict, overrides: dict, progress: Progress):
    progress.show("deploying template.yaml and seeding the account ...")
    aws = Emulator(fixture, overrides)
    try:
        aws.__enter__()
    except (ClientError, BotoCoreError) as error:  # what IAM, SES or Secrets Manager refused while seeding
        raise InputError(f"the account fixture could not be seeded: {error}") from None
    try:
        yield aws
    finally:
        aws.__exit__(None, None, None)


def _stdout_kept_for_json(as_json: bool):
    """With --json, stdout holds the one document: anything else printed meanwhile goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def _finish(aws: Emulator, runs: list[Run], records: list[dict], before: dict, as_json: bool) -> dict:
    checked = sum(len(r.published_texts()) for r in runs)
    leaks = aws.leaked_texts(*runs)
    problems = aws.invariant_violations(*runs)
    failed = [r.name for r in runs if r.status != "SUCCEEDED"]
    code = EXIT_BROKEN_PROMISE if problems or leaks else EXIT_RUN_FAILED if failed else EXIT_OK
    if not as_json:
        print("\nChecks after every run:")
        print("  invariants (AWSCURRENT is an Active key of its user; every key created is stored; no Active key deleted): "
              + ("hold" if not problems else "VIOLATED: " + "; ".join(problems)))
        print(f"  secret access keys in {checked} outputs, causes, emails and Lambda payloads: "
              + ("none" if not leaks else f"FOUND in {len(leaks)}"))
        if failed:
            print(f"  runs that did not succeed: {', '.join(failed)}")
        print(f"Exit status {code}: " + {
            EXIT_OK: "every run succeeded and every check passed.",
            EXIT_RUN_FAILED: "a run did not succeed; the invariants hold and no secret leaked.",
            EXIT_BROKEN_PROMISE: "a promise of the workflow was broken (above).",
        }[code])
    return {
        "parameters": dict(aws.deployment.parameters),
        "accountBefore": before,
        "runs": records,
        "accountAfter": {"time": decisions.format_time(aws.clock.now), "users": _account_state(aws, aws.users)},
        "failedRuns": failed,
        "invariantViolations": problems,
        "leakedTexts": len(leaks),
        "checkedTexts": checked,
        "exitCode": code,
    }


def _emit(document: dict, as_json: bool) -> int:
    if as_json:
        order = ("command", "fixture", "event", "parameters", "accountBefore", "runs", "accountAfter")
        ordered = {k: document[k] for k in order} | {k: v for k, v in document.items() if k not in order}
        print(json.dumps(ordered, indent=2, default=str))
    return document["exitCode"]


# --- the fixture --------------------------------------------------------------------------------------------

_FIXTURE_FIELDS = {"description", "start", "parameters", "verifiedEmails", "users"}
_USER_FIELDS = {"name", "path", "tags", "note", "keys"}
_KEY_FIELDS = {"ageDays", "created", "status", "inSecret", "inactiveDaysAgo", "lastUsed", "lastUsedHoursAgo", "lastUsedBy",
               "usedUntilDay", "note"}


def read_fixture(path: Path) -> dict:
    fixture = _read_json(path, "account fixture")
    problems = fixture_problems(fixture)
    if problems:
        listed = "".join(f"\n  - {problem}" for problem in problems)
        raise InputError(f"account fixture {path} does not follow the format (python -m emulator --help):{listed}")
    return fixture


def _read_json(path: Path, what: str):
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise InputError(f"{what} {path}: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise InputError(f"{what} {path} is not valid JSON: {error}") from None


def fixture_problems(fixture) -> list[str]:
    """Everything wrong with a fixture, each with where it is; [] for a good one."""
    if not isinstance(fixture, dict):
        return ["it must be a JSON object"]
    problems = _unknown_fields(fixture, _FIXTURE_FIELDS, "the fixture")
    if "start" in fixture and not _is_time(fixture["start"]):
        problems.append(f"start {fixture['start']!r} is not an ISO-8601 time with a zone, e.g. 2026-01-05T06:00:00Z")
    parameters = fixture.get("parameters", {})
    if not isinstance(parameters, dict) or not all(isinstance(v, (str, int, float)) for v in parameters.values()):
        problems.append('parameters must be an object of template parameter values, e.g. {"MaxKeyAgeDays": "30"}')
    if not _is_list_of(fixture.get("verifiedEmails", []), str):
        problems.append("verifiedEmails must be a list of email addresses")
    users = fixture.get("users", [])
    if not isinstance(users, list):
        return problems + ["users must be a list"]
    names: set[str] = set()
    for i, user in enumerate(users):
        where = f"users[{i}]"
        if not isinstance(user, dict):
            problems.append(f"{where} must be an object")
            continue
        name = user.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[\w+=,.@-]{1,64}", name):
            problems.append(f"{where}.name {name!r} is not an IAM user name")
        else:
            where += f" ({name})"
            if name in names:
                problems.append(f"{where}: a second user of that name")
            names.add(name)
        problems += _unknown_fields(user, _USER_FIELDS, where)
        path = user.get("path", "/")
        if not isinstance(path, str) or not re.fullmatch(r"/([\x21-\x7e]*/)?", path):
            problems.append(f"{where}.path {path!r} is not an IAM path such as / or /services/")
        tags = user.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            problems.append(f'{where}.tags must be an object of strings, e.g. {{"KeyRotation": "enabled"}}')
        keys = user.get("keys", [])
        if not isinstance(keys, list) or len(keys) > 2:
            problems.append(f"{where}.keys must be a list of at most 2 keys (IAM's limit)")
            continue
        for j, key in enumerate(keys):
            problems += _key_problems(key, f"{where}.keys[{j}]")
    return problems


def _key_problems(key, where: str) -> list[str]:
    if not isinstance(key, dict):
        return [f"{where} must be an object"]
    problems = _unknown_fields(key, _KEY_FIELDS, where)
    for field in ("ageDays", "inactiveDaysAgo", "lastUsedHoursAgo", "usedUntilDay"):
        value = key.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{where}.{field} {value!r} must be a number of days, 0 or more")
    if "created" in key:
        if "ageDays" in key:
            problems.append(f"{where}: give ageDays or created, not both")
        if not _is_time(key["created"]):
            problems.append(f"{where}.created {key['created']!r} is not an ISO-8601 time with a zone")
    if "lastUsed" in key and not _is_time(key["lastUsed"]):
        problems.append(f"{where}.lastUsed {key['lastUsed']!r} is not an ISO-8601 time with a zone")
    if key.get("status", "Active") not in ("Active", "Inactive"):
        problems.append(f"{where}.status {key['status']!r} must be Active or Inactive")
    if not isinstance(key.get("inSecret", False), bool):
        problems.append(f"{where}.inSecret must be true or false")
    return problems


def _unknown_fields(obj: dict, allowed: set[str], where: str) -> list[str]:
    unknown = sorted(set(obj) - allowed)
    return [f"{where} has unknown field(s) {', '.join(unknown)}; allowed are {', '.join(sorted(allowed))}"] if unknown else []


def _is_time(value) -> bool:
    try:
        decisions.parse_time(value)
    except ValueError:
        return False
    return True


def _is_list_of(value, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) for v in value)


# --- the account, as data -----------------------------------------------------------------------------------


def _account_state(aws: Emulator, users: list[str]) -> list[dict]:
    """Each user's keys (oldest first) and its secret's staged versions, for the tables and --json."""
    state = []
    for user in users:
        keys = sorted(account.keys_of(user), key=lambda k: k.created)
        secret = aws.secret_prefix + user
        versions = _secret_versions(secret, {k.id: k.status for k in keys})
        state.append({
            "name": user,
            "managed": _managed(aws, user),
            "keys": [
                {"id": k.id, "status": k.status, "created": decisions.format_time(k.created),
                 "ageDays": (aws.clock.now - k.created).days}
                for k in keys
            ],
            "secret": secret if versions else None,
            "secretVersions": versions,
        })
    return state


def _secret_versions(secret: str, key_statuses: dict[str, str]) -> list[dict]:
    return [
        {"versionId": v.version_id, "stages": list(v.stages), "keyId": v.key_id,
         "keyStatus": key_statuses.get(v.key_id, "deleted") if v.key_id else None}
        for v in account.secret_versions(secret)
    ]


def _managed(aws: Emulator, user: str) -> bool:
    p = aws.deployment.parameters
    path = next(u for u in aws.fixture["users"] if u["name"] == user).get("path", "/")
    return decisions.is_managed(path, account.tags_of(user), p["UserPath"], p["UserTagKey"], p["UserTagValue"])


def _run_record(aws: Emulator, run: Run, execution_input, day: int | None) -> dict:
    secrets = {}
    for user in aws.users:
        versions = _secret_versions(aws.secret_prefix + user, run.keys_after[user])
        if versions:
            secrets[user] = versions
    return {
        "name": run.name,
        "day": day,
        "time": run.time,
        "input": execution_input,
        "status": run.status,
        "error": run.error,
        "cause": run.cause,
        "output": run.output,
        "statesEntered": run.states_entered(),
        "keys": {u: {"before": run.keys_before[u], "after": run.keys_after[u]} for u in aws.users},
        "secretVersions": secrets,
        "emails": [
            {"source": e.source, "recipients": e.destinations, "subject": e.subject, "body": e.body} for e in run.emails
        ],
    }


# --- the report for people ----------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]], right: frozenset[int] = frozenset(), indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell (``right``: right-aligned); a column with no value is left out."""
    kept = [i for i in range(len(header)) if any(row[i] for row in rows)]
    header, rows = [header[i] for i in kept], [[row[i] for i in kept] for row in rows]
    right = {kept.index(i) for i in right if i in kept}
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return (indent + "  ".join(padded)).rstrip()

    return [line(header), *map(line, rows)]


def _print_header(aws: Emulator, source: Path) -> None:
    p = aws.deployment.parameters
    shown = ("MaxKeyAgeDays", "InstallWindowDays", "RecoveryWindowDays", "UserPath", "UserTagKey", "UserTagValue", "DryRun")
    print("IAM access key rotation, offline: template.yaml (through the SAM translator), statemachine/rotation.asl.json")
    print("and the Lambda functions on an emulated AWS account (moto). No AWS account is used.")
    print(f"Account fixture: {_shown(source)}")
    print("Parameters: " + ", ".join(f"{k}={p[k]}" for k in shown if k in p))


def _print_account(users: list[dict], indent: str = "  ") -> None:
    """The keys table (a row per key, oldest first), then the secrets' staged versions."""
    rows = []
    for user in users:
        stages = {v["keyId"]: "+".join(v["stages"]) for v in user["secretVersions"]}
        scope = "" if user["managed"] else "out of scope"
        keys = user["keys"] or [None]
        for n, key in enumerate(keys):
            name = user["name"] if n == 0 else ""
            if key is None:
                rows.append([name, "(no keys)", "", "", "", scope])
            else:
                rows.append([name, key["id"], key["status"], f"{key['ageDays']}d", stages.get(key["id"], ""),
                             scope if n == 0 else ""])
    print("\n".join(table(["USER", "KEY", "STATUS", "AGE", "IN SECRET", "SCOPE"], rows, frozenset({3}), indent)))
    versions = []
    for user in users:
        for n, v in enumerate(user["secretVersions"]):
            versions.append([user["secret"] if n == 0 else "", v["versionId"], "+".join(v["stages"]),
                             v["keyStatus"] or "(not written by the workflow)"])
    if versions:
        print(f"{indent}Secrets: their staged versions (a version id names the key it holds; values are never shown):")
        print("\n".join(table(["SECRET", "VERSION", "STAGES", "KEY NOW"], versions, indent=indent)))


def _print_run(aws: Emulator, run: Run, title: str) -> None:
    states = len(run.states_entered())
    print(f"\n{'=' * 100}\n{title} at {run.time}: {run.name} {run.status}, {states} states entered")
    if run.status != "SUCCEEDED":
        print(f"  error: {run.error}\n  cause: {run.cause}")
    summary = run.output or _summary_from_cause(run.cause)
    if isinstance(summary, dict) and "users" in summary:
        for entry in summary["users"]:
            print("\n".join("  " + line for line in report.user_paragraph(entry)))
        print(f"  ({summary.get('unchangedUsers')} of {summary.get('managedUsers')} managed users unchanged)")
    changed = [u for u in aws.users if run.keys_after[u] != run.keys_before[u]]
    print("  Keys and secrets of the users this run changed:" if changed else "  No key or secret changed.")
    if changed:
        _print_account(_account_state(aws, changed), indent="    ")
    for email in run.emails:
        print(f"  Email from {email.source} to {', '.join(email.destinations)}")
        print(f"    Subject: {email.subject}")
        for line in email.body.splitlines():
            print(f"    | {line}".rstrip())
    if not run.emails:
        print("  No email: nothing changed, blocked, needed attention or failed.")


def _summary_from_cause(cause: str | None) -> dict | None:
    if cause and "Summary: " in cause:
        try:
            return json.loads(cause.split("Summary: ", 1)[1])
        except ValueError:
            return None
    return None


def _print_timeline(run: Run) -> None:
    """The run's states in the order they were entered (Choice states left out), and under each Distributed Map
    its child executions: each batch, and in a batch each user's steps, named by the user its iteration acts on."""
    if not run.events:
        return
    print(f"\nTimeline of {run.name} (ms since the execution started):")
    start = run.events[0]["timestamp"]
    labels = _map_labels(diagram.load())
    entered = [(e, e["stateEnteredEventDetails"]["name"]) for e in run.events if "stateEnteredEventDetails" in e]
    width = max((len(name) for _, name in entered), default=0)
    for event, name in entered:
        kind = event["type"].replace("StateEntered", "")
        print(f"  {(event['timestamp'] - start).total_seconds() * 1000:6.0f}  {name:<{width}}  {kind}")
        for child in (c for c in run.children if f"/{labels.get(name)}:" in c.map_run_arn):
            for line in _child_lines(child):
                print("          " + line)


def _map_labels(asl: dict) -> dict[str, str]:
    """Each Distributed Map's state name -> its Label (which names its map runs and child executions)."""
    return {name: state["Label"] for name, state in asl["States"].items() if state.get("Label")}


def _child_lines(child) -> list[str]:
    """One child execution: a batch planned, a batch acted on (a line per user), or an owner email."""
    given = child.input if isinstance(child.input, dict) else {}
    if "to" in given:
        return [f"email to {', '.join(given['to'])}: {'sent' if child.status == 'SUCCEEDED' else 'NOT SENT'}"]
    if child.status != "SUCCEEDED":
        return [f"batch {given.get('batch')}: {child.status} ({child.error})"]
    if "actions" in (child.output or {}):
        plan = child.output
        counts = ", ".join(f"{len(plan[k])} {k}" for k in ("actions", "blocked", "attention", "unreadable") if plan[k])
        return [f"batch {plan['batch']}: {len(given.get('users', []))} users planned" + (f" ({counts})" if counts else "")]
    users = [u["user"] for u in given.get("users", [])]
    steps = {i: history.states_entered(events, choices=False) for i, events in history.iterations(child.events).items()}
    lines = [f"batch {given.get('batch')}: {len(users)} users acted on"]
    return lines + [f"  {users[i] if i < len(users) else i}: " + " -> ".join(steps[i]) for i in sorted(steps)]


class Progress:
    """A one-line "run 3/4 ..." on stderr while the runs go, only when stderr is a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.clear()  # also when an error ends the command: its message starts on a clean line


if __name__ == "__main__":
    sys.exit(main())
