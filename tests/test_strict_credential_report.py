"""IAM's credential report as AWS makes it (emulator/credential_report.py), each point proven twice: it holds on the
emulator, and plain moto (the emulator without its strict patches) lets it through, so each test can fail."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from test_strict_aws import START, error_code, holds_on_the_emulator_and_not_on_plain_moto, iam

from emulator.credential_report import GENERATION_TIME, REPORT_LIFETIME


def report_rows() -> dict[str, dict]:
    got = iam().get_credential_report()
    return {row["user"]: row for row in csv.DictReader(io.StringIO(got["Content"].decode()))}


def generated(clock) -> None:
    """Ask for a report and let IAM write it."""
    iam().generate_credential_report()
    clock.move_to_at_least(clock.now + GENERATION_TIME)
    assert iam().generate_credential_report()["State"] == "COMPLETE"


def test_a_new_report_takes_time_to_write_and_cannot_be_read_meanwhile():
    def check(clock):
        assert iam().generate_credential_report()["State"] == "STARTED"
        assert iam().generate_credential_report()["State"] == "INPROGRESS"
        assert error_code(iam().get_credential_report) == "ReportInProgress"
        clock.move_to_at_least(clock.now + GENERATION_TIME)
        assert iam().generate_credential_report()["State"] == "COMPLETE"

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_the_report_is_dated_when_iam_wrote_it():
    def check(clock):
        generated(clock)
        assert iam().get_credential_report()["GeneratedTime"] == START + GENERATION_TIME

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_report_younger_than_four_hours_is_kept_and_misses_what_changed_since():
    def check(clock):
        iam().create_user(UserName="app")
        generated(clock)
        iam().create_access_key(UserName="app")
        clock.move_to_at_least(START + REPORT_LIFETIME - timedelta(minutes=1))
        assert iam().generate_credential_report()["State"] == "COMPLETE"  # the old one
        assert report_rows()["app"]["access_key_1_active"] == "false"  # the key made since is not in it

        clock.move_to_at_least(START + REPORT_LIFETIME + GENERATION_TIME)
        generated(clock)  # four hours old: IAM writes a new one
        assert report_rows()["app"]["access_key_1_active"] == "true"

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_an_inactive_key_shows_no_date_as_iam_documents():
    def check(clock):
        iam().create_user(UserName="app")
        key = iam().create_access_key(UserName="app")["AccessKey"]["AccessKeyId"]
        iam().update_access_key(UserName="app", AccessKeyId=key, Status="Inactive")
        generated(clock)
        row = report_rows()["app"]
        assert (row["access_key_1_active"], row["access_key_1_last_rotated"]) == ("false", "N/A")

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_name_holding_a_comma_is_one_field_of_its_row():
    def check(clock):
        iam().create_user(UserName="ci,deployer")  # IAM allows a comma in a user name
        iam().create_access_key(UserName="ci,deployer")
        generated(clock)
        rows = report_rows()
        assert "ci,deployer" in rows  # plain moto writes it bare: the row reads as user "ci", its fields shifted
        assert rows["ci,deployer"]["access_key_1_active"] == "true" and None not in rows["ci,deployer"]

    holds_on_the_emulator_and_not_on_plain_moto(check)
