"""tools/deploy_check.py: `make deploy` says what is wrong in one line before it asks anything.

Each problem `sam deploy --guided` would find only after its questions (no terminal, no region, no or refused
credentials, an unverified sender) ends the check with one line saying what to do; AWS is moto.
"""

import io
import tomllib

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import mock_aws

from tools import deploy_check

SENDER = "key-rotation@example.com"
# As `sam deploy --guided` saves the answers: one string of NAME="VALUE" pairs.
SAVED = '''
version = 0.1
[default.deploy.parameters]
region = "eu-west-1"
parameter_overrides = "SenderEmail=\\"key-rotation@example.com\\" NotificationEmails=\\"platform-team@example.com\\""
'''


@pytest.fixture(autouse=True)
def nothing_configured(monkeypatch, tmp_path):
    """No region, credentials, profile or sender but what a test sets (conftest's fake credentials are removed)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "SENDER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


@pytest.fixture
def account(monkeypatch):
    """Credentials for moto's account, in us-east-1."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def the_one_line(capsys, config=deploy_check.SAMCONFIG, stdin=None) -> tuple[int, str]:
    """Run the check: (exit status, the one line it printed, on stdout or stderr)."""
    exit_code = deploy_check.main(config, stdin or _Terminal())
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert shown.count("\n") == 1 and shown.endswith("\n"), shown
    assert (captured.out if exit_code == 0 else captured.err) == shown  # problems on stderr, success on stdout
    return exit_code, shown.rstrip("\n")


def test_no_terminal_says_how_to_deploy_without_questions(capsys):
    assert the_one_line(capsys, stdin=io.StringIO()) == (
        1, "make deploy asks questions: run `sam deploy --guided` in a terminal, or `sam deploy` with a samconfig.toml"
    )


NO_REGION = (
    1, "no AWS region set: run `aws configure set region <region>`, or set AWS_DEFAULT_REGION (e.g. AWS_DEFAULT_REGION=eu-west-1)"
)


def test_no_region_says_how_to_set_one(capsys):
    assert the_one_line(capsys) == NO_REGION


def test_aws_region_alone_is_no_region_for_sam(capsys, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # the AWS CLI reads it; botocore, and so sam, do not

    assert the_one_line(capsys) == NO_REGION


def test_no_credentials_says_how_to_get_them(capsys, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    assert the_one_line(capsys) == (
        1, "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE"
    )


@pytest.mark.parametrize("code, said", [
    ("ExpiredToken", "your AWS credentials have expired: get new ones"),
    ("InvalidClientTokenId", "AWS does not know the access key of your credentials"),
    ("AccessDenied", "AWS refused your credentials (AccessDenied: no)"),
])
def test_refused_credentials_say_what_to_do(code, said, capsys, monkeypatch, account):
    def refuse(client, operation, params):
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, operation)

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)

    exit_code, line = the_one_line(capsys)
    assert exit_code == 1 and line.startswith(said) and line.endswith("; then run make deploy again")


def test_with_no_sender_known_yet_the_check_names_the_account_and_region(capsys, account):
    # The repository's samconfig.toml holds no parameter_overrides until `sam deploy --guided` saves them.
    saved = tomllib.loads(deploy_check.SAMCONFIG.read_text())["default"]["deploy"]["parameters"]
    assert "parameter_overrides" not in saved and "region" not in saved

    assert the_one_line(capsys) == (
        0, "ready to deploy: account 123456789012 (arn:aws:sts::123456789012:user/moto), region us-east-1"
    )


def test_the_region_named_is_the_one_sam_deploys_to(capsys, monkeypatch, account):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # the AWS CLI's; boto3, and so sam, go by AWS_DEFAULT_REGION

    exit_code, line = the_one_line(capsys)
    assert exit_code == 0 and line.endswith(", region us-east-1")


def test_an_unverified_sender_says_how_to_verify_it(capsys, monkeypatch, account):
    monkeypatch.setenv("SENDER_EMAIL", SENDER)
    boto3.client("ses", region_name="us-west-2").verify_email_identity(EmailAddress=SENDER)  # another region's

    assert the_one_line(capsys) == (1, (
        "SES in us-east-1 has not verified the sender key-rotation@example.com (nor example.com): run `aws ses "
        "verify-email-identity --email-address key-rotation@example.com --region us-east-1` and open the link it emails"
    ))


@pytest.mark.parametrize("verified", [SENDER, "example.com"], ids=["the address", "its domain"])
def test_a_verified_sender_passes(verified, capsys, monkeypatch, account):
    monkeypatch.setenv("SENDER_EMAIL", SENDER)
    ses = boto3.client("ses", region_name="us-east-1")
    if "@" in verified:
        ses.verify_email_identity(EmailAddress=verified)
    else:
        ses.verify_domain_identity(Domain=verified)

    assert the_one_line(capsys) == (0, (
        "ready to deploy: account 123456789012 (arn:aws:sts::123456789012:user/moto), region us-east-1, "
        "sender key-rotation@example.com verified in SES"
    ))


def test_the_sender_and_region_sam_saved_in_samconfig_are_the_ones_checked(capsys, tmp_path, account):
    (tmp_path / "samconfig.toml").write_text(SAVED)
    ses = boto3.client("ses", region_name="eu-west-1")

    exit_code, line = the_one_line(capsys, tmp_path / "samconfig.toml")
    assert exit_code == 1 and line.startswith("SES in eu-west-1 has not verified the sender key-rotation@example.com")

    ses.verify_email_identity(EmailAddress=SENDER)
    exit_code, line = the_one_line(capsys, tmp_path / "samconfig.toml")
    assert exit_code == 0 and line.endswith("region eu-west-1, sender key-rotation@example.com verified in SES")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_profile_sam_saved_in_samconfig_is_the_one_checked(capsys, tmp_path, monkeypatch):
    (tmp_path / "samconfig.toml").write_text('version = 0.1\n[default.deploy.parameters]\nprofile = "rotation-admin"\n')
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))

    assert the_one_line(capsys, tmp_path / "samconfig.toml") == (
        1, "The config profile (rotation-admin) could not be found: run `aws configure --profile rotation-admin`, or "
        "change profile in samconfig.toml"
    )
