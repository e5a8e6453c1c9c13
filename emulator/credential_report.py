"""IAM's credential report as AWS makes it, where moto's would hide a defect of a planner that trusts it.

moto's GetCredentialReport lists the keys as they are at the moment it is asked, dated 2015-02-02, ready at once.
AWS's report is a snapshot, and a stale one (tests/test_strict_credential_report.py has a test per point that fails on
plain moto):
- GenerateCredentialReport starts a new report only when there is none or the last is four hours old or more;
  otherwise it answers COMPLETE, and GetCredentialReport returns that older report: a key made, deactivated or
  deleted since does not show;
- a new report takes time to write (GENERATION_TIME on the emulator's clock): GenerateCredentialReport answers
  STARTED, then INPROGRESS, and GetCredentialReport meanwhile fails with ReportInProgress;
- GeneratedTime is when the report was written, from the emulator's clock; the keys are as they were when it was
  started (the older of the two moments, the stricter);
- ``access_key_N_last_rotated`` is N/A for a slot without an Active key, as IAM documents it: an Inactive key shows
  as no key at all;
- a name holding a comma is quoted, as CSV has it (moto writes it bare, and the row's fields shift; the planner
  leaves out a row whose fields do not match the header either way).
The Lambda's wait between asks (reading.pause) moves the emulator's clock instead of sleeping.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import sys
from dataclasses import dataclass
from unittest import mock

# IAM makes a new report only when the last is this old.
REPORT_LIFETIME = dt.timedelta(hours=4)
# How long IAM takes to write one on the emulator (AWS publishes no figure): long enough that a planner must wait.
GENERATION_TIME = dt.timedelta(seconds=2)


@dataclass
class _Report:
    generated: dt.datetime  # when it is ready
    content: str  # the keys as they were when it was started


@contextlib.contextmanager
def credential_reports_as_aws_makes_them(clock):
    """Apply the patches; ``clock`` is the emulator's faithful_moto.Clock."""
    from moto.iam.exceptions import IAMException, ReportNotPresentException
    from moto.iam.responses import IamResponse

    class ReportInProgress(IAMException):
        code = "ReportInProgress"

    def generate(response):
        backend, now = response.backend, clock.now
        backend.generate_report()  # moto's own step: where a fault (emulator.faults.failing) strikes
        report = getattr(backend, "emulated_credential_report", None)
        if report is None or now - report.generated >= REPORT_LIFETIME:
            backend.emulated_credential_report = _Report(now + GENERATION_TIME, _snapshot(backend))
            return _result({"State": "STARTED", "Description": "No report exists. Starting a new report generation task"})
        return _result({"State": "INPROGRESS" if now < report.generated else "COMPLETE"})

    def get(response):
        report = getattr(response.backend, "emulated_credential_report", None)
        if report is None:
            raise ReportNotPresentException("Credential report not present")
        if clock.now < report.generated:
            raise ReportInProgress("Credential report is still being generated")
        return _result({
            "Content": report.content,
            "ReportFormat": "text/csv",
            "GeneratedTime": report.generated.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })

    def pause(seconds: float) -> None:
        clock.advance(dt.timedelta(seconds=seconds))

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(IamResponse, "generate_credential_report", generate))
        stack.enter_context(mock.patch.object(IamResponse, "get_credential_report", get))
        stack.enter_context(_handler_waits_with(pause))
        yield


def users_the_report_shows_otherwise(account_id: str) -> set[str]:
    """The users (by user key) whose keys the account's last credential report shows otherwise than IAM has them
    now, or does not list: a run that planned from that report could not see their change. Empty when the account
    has no report (a run then reads every user's keys)."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["global"]
    report = getattr(backend, "emulated_credential_report", None)
    if report is None:
        return set()
    then, now = (_rows(text) for text in (report.content, _snapshot(backend)))
    return {user for user in now if then.get(user) != now[user]}


def _rows(text: str) -> dict[str, tuple]:
    """Each user's key columns, by user key."""
    columns = [f"access_key_{slot}_{field}" for slot in (1, 2) for field in ("active", "last_rotated")]
    return {row["user"].lower(): tuple(row[c] for c in columns) for row in csv.DictReader(io.StringIO(text))}


def _snapshot(backend) -> str:
    """The report of the account as its users and keys are now, written as IAM writes it: a CSV row per user, quoted
    where a name holds a comma (moto writes it unquoted, shifting the row), N/A for a slot without an Active key."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_HEADER)
    for user in list(backend.users.values()):
        row = {column: "N/A" for column in _HEADER}
        row.update(
            user=user.name, arn=user.arn, user_creation_time=_date(user.create_date),
            password_enabled="true" if user.password else "false", mfa_active="false",
            access_key_1_active="false", access_key_2_active="false", cert_1_active="false", cert_2_active="false",
        )
        for slot, key in enumerate(list(user.access_keys)[:2], start=1):
            active = key.status == "Active"
            row[f"access_key_{slot}_active"] = "true" if active else "false"
            row[f"access_key_{slot}_last_rotated"] = _date(key.create_date) if active else "N/A"
            if key.last_used is not None:
                row[f"access_key_{slot}_last_used_date"] = _date(key.last_used.timestamp)
                row[f"access_key_{slot}_last_used_region"] = key.last_used.region
                row[f"access_key_{slot}_last_used_service"] = key.last_used.service
        writer.writerow([row[column] for column in _HEADER])
    return out.getvalue()


def _date(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _result(fields: dict):
    from moto.core.responses import ActionResult  # what moto's IAM responses return

    return ActionResult(fields)


@contextlib.contextmanager
def _handler_waits_with(pause):
    """The functions' reading.pause, whenever their module is loaded (lambda_runtime imports it on first use)."""
    from . import lambda_runtime

    def patch_reading():
        reading = sys.modules.get("reading")
        if reading is not None and getattr(reading, "pause", None) is not pause:
            originals.setdefault("pause", (reading, reading.pause))
            reading.pause = pause

    originals: dict = {}
    lambda_runtime.AFTER_IMPORT.append(patch_reading)
    try:
        yield
    finally:
        lambda_runtime.AFTER_IMPORT.remove(patch_reading)
        if "pause" in originals:
            module, original = originals["pause"]
            module.pause = original


_HEADER = [
    "user", "arn", "user_creation_time", "password_enabled", "password_last_used", "password_last_changed",
    "password_next_rotation", "mfa_active", "access_key_1_active", "access_key_1_last_rotated",
    "access_key_1_last_used_date", "access_key_1_last_used_region", "access_key_1_last_used_service",
    "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date", "access_key_2_last_used_region",
    "access_key_2_last_used_service", "cert_1_active", "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated",
]
