"""Before `make deploy` asks anything: what would make `sam deploy --guided` fail only after its questions.

`sam deploy --guided` asks about thirty questions and only then finds what was wrong from the start: no terminal
to answer in ("Aborted!"), no region, credentials missing or expired ("Unable to locate credentials"), or a
sender address SES has not verified (the stack deploys, then every run fails to send its report). This checks
each, in that order; on the first problem it prints one line saying what to do and exits 1. When all is well it
prints one line naming the account and region the deploy goes to, and exits 0.

    .venv/bin/python tools/deploy_check.py        # make deploy runs it before sam build

The sender is SENDER_EMAIL if set, else the SenderEmail that `sam deploy --guided` saved in samconfig.toml's
parameter_overrides; with neither (a first deploy), the sender is left to the guided questions. boto3 only.
"""

from __future__ import annotations

import os
import shlex
import sys
import tomllib
from pathlib import Path

import boto3
from botocore.exceptions import (
    BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound, SSOError, TokenRetrievalError,
)

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"

NO_TERMINAL = (
    "make deploy asks questions: run `sam deploy --guided` in a terminal, or `sam deploy` with a samconfig.toml"
)
NO_REGION = (
    "no AWS region set: run `aws configure set region <region>`, or set AWS_DEFAULT_REGION (e.g. "
    "AWS_DEFAULT_REGION=eu-west-1)"
)
NO_CREDENTIALS = "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE"

EXPIRED = "your AWS credentials have expired: get new ones (`aws sso login`, or however you got them)"

# What to do when STS refuses the credentials, by its error code.
_REFUSED = {
    "ExpiredToken": EXPIRED,
    "ExpiredTokenException": EXPIRED,
    "InvalidClientTokenId": "AWS does not know the access key of your credentials: check AWS_ACCESS_KEY_ID or your "
    "profile (`aws configure list` shows which is used), or run `aws sso login`",
    "SignatureDoesNotMatch": "the secret access key of your credentials does not match its key id: fix it with "
    "`aws configure` (or AWS_SECRET_ACCESS_KEY)",
}


class Problem(Exception):
    """The first thing that would make the deploy fail: its message is the one line to print."""


def main(config: Path = SAMCONFIG, stdin=None) -> int:
    try:
        print(check(config, stdin or sys.stdin))
    except Problem as problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


def check(config: Path, stdin) -> str:
    """Each check in turn (raising the first Problem); the line to print when all pass."""
    if not stdin.isatty():
        raise Problem(NO_TERMINAL)
    deploy = _deploy_parameters(config)
    try:
        session = boto3.Session(profile_name=deploy.get("profile"))  # samconfig.toml's profile wins, as in sam
    except ProfileNotFound as error:
        profile = error.kwargs["profile"]
        named_by = f"change profile in {config.name}" if deploy.get("profile") else "unset AWS_PROFILE"
        raise Problem(f"{error}: run `aws configure --profile {profile}`, or {named_by}") from None
    # As sam picks it: samconfig.toml's, else boto3's (AWS_DEFAULT_REGION, then the profile's). Not AWS_REGION:
    # botocore, and so sam, never read it.
    region = deploy.get("region") or session.region_name
    if not region:
        raise Problem(NO_REGION)
    identity = _caller_identity(session, region)
    account = f"ready to deploy: account {identity['Account']} ({identity['Arn']}), region {region}"
    sender = os.environ.get("SENDER_EMAIL") or _overrides(deploy).get("SenderEmail")
    if not sender:
        return account
    _check_sender(session, region, sender)
    return f"{account}, sender {sender} verified in SES"


def _deploy_parameters(config: Path) -> dict:
    """samconfig.toml's settings for `sam deploy` (the default environment), as sam reads them: deploy over global."""
    if not config.exists():
        return {}
    try:
        default = tomllib.loads(config.read_text()).get("default", {})
    except tomllib.TOMLDecodeError as error:
        raise Problem(f"{config} is not valid TOML ({error}): fix it, or delete it and let sam write it") from None
    return default.get("global", {}).get("parameters", {}) | default.get("deploy", {}).get("parameters", {})


def _overrides(deploy: dict) -> dict[str, str]:
    """parameter_overrides as sam saves them: one string of NAME="VALUE" pairs, or a list of NAME=VALUE."""
    saved = deploy.get("parameter_overrides", [])
    pairs = shlex.split(saved) if isinstance(saved, str) else saved
    return dict(pair.partition("=")[::2] for pair in pairs)


def _caller_identity(session: boto3.Session, region: str) -> dict:
    try:
        return session.client("sts", region_name=region).get_caller_identity()
    except NoCredentialsError:
        raise Problem(NO_CREDENTIALS) from None
    except (TokenRetrievalError, SSOError):
        raise Problem("your AWS SSO session has expired or is not signed in: run `aws sso login`") from None
    except ClientError as error:
        code = error.response["Error"]["Code"]
        advice = _REFUSED.get(code, f"AWS refused your credentials ({code}: {error.response['Error'].get('Message')})")
        raise Problem(f"{advice}; then run make deploy again") from None
    except BotoCoreError as error:
        raise Problem(f"could not ask AWS who you are in {region} ({error}): check the region and network") from None


def _check_sender(session: boto3.Session, region: str, sender: str) -> None:
    """The sender, or its domain, must be verified in SES in the region the stack sends from."""
    domain = sender.rpartition("@")[2]
    try:
        found = session.client("ses", region_name=region).get_identity_verification_attributes(
            Identities=[sender, domain]
        )["VerificationAttributes"]
    except (ClientError, BotoCoreError) as error:
        raise Problem(f"could not ask SES in {region} whether {sender} is verified ({error}): check that your "
                      "credentials may call ses:GetIdentityVerificationAttributes") from None
    if not any(found.get(identity, {}).get("VerificationStatus") == "Success" for identity in (sender, domain)):
        raise Problem(f"SES in {region} has not verified the sender {sender} (nor {domain}): run `aws ses verify-email-"
                      f"identity --email-address {sender} --region {region}` and open the link it emails")


if __name__ == "__main__":
    sys.exit(main())
