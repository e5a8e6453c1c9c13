"""The command line of ``python -m emulator``: its arguments and help, and what each command's errors exit with.

    python -m emulator                      # the demo: fixtures/demo-account.json, runs on day 0, 7, 14, 21
    python -m emulator run --account my-account.json --event events/on-demand-rotation.json
    python -m emulator diagram --write docs/how-it-decides.md

``python -m emulator --help`` explains the commands, the account fixture format, --json and the exit status.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from . import diagram, stack
from .commands import DEMO_FIXTURE, EXIT_OK, run_one, walk
from .fixture import FIXTURE_FORMAT, InputError, read_fixture, read_json

DEMO_DAYS = (0, 7, 14, 21)

EXIT_USAGE, EXIT_CRASH = 2, 4

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
  python -m emulator diagram --write docs/how-it-decides.md   (make diagram)
"""

EXIT_STATUS = """\
exit status (demo and run):
  0  every run SUCCEEDED, the invariants held and no secret appeared anywhere. A user reported BLOCKED
     or ATTENTION does not count against this: its run succeeds, as it does in AWS, and the email says
     what to do. Nor does a run that FAILED only because it could not reach the member accounts an
     organization fixture gives no member stack ("memberStack": false): that is what such a fixture shows.
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
Any status but 0 ends the output with one line that says what went wrong and what to do: after the report
on stdout, or on stderr (with --json, and for a usage or input error).
"""

JSON_FORMAT = """\
--json prints one JSON document on stdout instead of the report (progress and errors stay on stderr):
  {"command", "fixture", "event", "parameters",
   "accountBefore" / "accountAfter": {"time", "users": [{"name", "managed", "keys": [{"id", "status",
        "created", "ageDays"}], "secret", "secretVersions": [{"versionId", "stages", "keyId", "keyStatus"}]}]},
   "runs": [{"name", "day", "time", "input", "status", "error", "cause", "output", "statesEntered",
             "keys": {user: {"before": {keyId: status}, "after": {...}}},
             "secretVersions": {user: [...]}, "emails": [{"source", "recipients", "subject", "body"}]}],
   "failedRuns", "failedAsMeant" (those that failed only for the accounts without the member stack),
   "invariantViolations", "leakedTexts", "checkedTexts", "exitCode"}
  It holds what the runs published (outputs, causes, emails); "leakedTexts" counts those that held a secret
  access key (exit status 3), which are not repeated anywhere else.
"""


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
    except InputError as error:
        print("\n".join([*error.details, f"error: {error}"]), file=sys.stderr)
        return EXIT_USAGE
    except stack.ParameterError as error:
        print(f"error: {error}: fix --param or the fixture's \"parameters\"", file=sys.stderr)
        return EXIT_USAGE
    except stack.TemplateError as error:
        print(f"error: {error}: fix template.yaml or statemachine/rotation.asl.json, or teach emulator/stack.py what "
              "they use", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        traceback.print_exc()
        print("error: the emulator crashed (the traceback above): a bug in the emulator; report it with the traceback",
              file=sys.stderr)
        return EXIT_CRASH


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    full = "\n".join((COMMANDS, EXIT_STATUS, FIXTURE_FORMAT, JSON_FORMAT))
    parser = _Parser(prog="python -m emulator", description=DESCRIPTION, epilog=full, formatter_class=raw)
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
        sub.add_argument("--param", type=parameter_override, action="append", default=[], metavar="NAME=VALUE",
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
                      help="replace the block between the markers in FILE (docs/how-it-decides.md) instead of printing")
    draw.set_defaults(handler=_diagram)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subcommands' too), whose usage error ends on a line that says where help is."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _days(text: str) -> list[int]:
    try:
        days = [int(d) for d in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of days, e.g. 0,7,14") from None
    if any(d < 0 for d in days) or days != sorted(days):
        raise argparse.ArgumentTypeError(f"{text!r}: days must be 0 or more, in order (the clock only moves forward)")
    return days


def parameter_override(text: str) -> tuple[str, str]:
    """A template parameter given as NAME=VALUE on a command line: --param here and in make bench (bench/run.py)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. MaxKeyAgeDays=30")
    return name, value


def _demo(args) -> int:
    fixture = read_fixture(args.account)
    return walk(fixture, args.days, dict(args.param), args.account, as_json=args.json)


def _run(args) -> int:
    fixture = read_fixture(args.account)
    execution_input = read_json(args.event, "event")
    return run_one(fixture, execution_input, dict(args.param), args.event, args.account, as_json=args.json)


def _diagram(args) -> int:
    try:
        asl = diagram.load(args.asl)
    except (OSError, ValueError) as error:
        raise InputError(f"ASL {args.asl}: {error}: give the path of a state machine definition (JSON)") from None
    if args.write is None:
        print(diagram.mermaid(asl), end="")
        return EXIT_OK
    try:
        changed = diagram.write(args.write, args.asl)
    except (OSError, ValueError) as error:
        raise InputError(f"{args.write}: {error}: give the page with the markers (docs/how-it-decides.md)") from None
    print(f"{args.write}: the state machine diagram {'is redrawn' if changed else 'was up to date'}")
    return EXIT_OK
