"""The key check Lambda: proves that the key a user's secret holds authenticates as that user, before the
workflow deactivates the user's older key (the consumers' fallback).

Event: ``{"user": "ci-deployer", "account": "123456789012", "secretName": "iam-key-rotation/ci-deployer", "keyId": "AKIA..."}``, where
``keyId`` is the key the plan expects the secret's AWSCURRENT version to hold.
Result: ``{"user", "keyId", "authenticatesAs"}`` (key ids and an ARN only: the secret never leaves this function,
and it is never logged). Errors, each with a message that says what to fix:
- ``KeyNotYetAccepted``: AWS rejected the key (IAM takes a few seconds to accept a new key everywhere, and a
  deactivated or deleted key is rejected for good); the state machine retries it with backoff.
- ``StoredKeyUnusable``: the secret is missing, is not the workflow's JSON, holds another key or another
  user's key, or the key authenticates as someone else. Not retried: a person must look.
"""

from __future__ import annotations

import json
import logging
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)
# botocore logs response bodies at DEBUG, and GetSecretValue's body is the secret: never below WARNING here.
logging.getLogger("botocore").setLevel(logging.WARNING)
logging.getLogger("boto3").setLevel(logging.WARNING)

# What STS answers for a key id it does not (yet, or any longer) accept. A known key id with the wrong secret is
# SignatureDoesNotMatch: no wait fixes that.
NOT_YET_ACCEPTED_CODES = {"InvalidClientTokenId"}
WRONG_SECRET_CODES = {"SignatureDoesNotMatch", "IncompleteSignature"}


# What to do about a secret that does not hold a usable key of its user.
FIX = (
    "deactivate the key the secret's version names if no consumer uses it (aws iam update-access-key "
    "--status Inactive), then run on demand with force to store a fresh key; the older key stays Active meanwhile"
)


class KeyNotYetAccepted(Exception):
    pass


class StoredKeyUnusable(Exception):
    pass


def handler(event, context):
    user, secret_name, key_id = event["user"], event["secretName"], event["keyId"]
    credentials = _stored_credentials(_secrets_of(event.get("account"), secret_name), secret_name, user, key_id)
    sts = boto3.client(
        "sts",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )
    try:
        arn = sts.get_caller_identity()["Arn"]
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in WRONG_SECRET_CODES:
            raise StoredKeyUnusable(
                f"secret {secret_name} holds key id {key_id} with a secret access key AWS does not accept ({code}): "
                "someone wrote it by hand: " + FIX
            ) from None
        if code in NOT_YET_ACCEPTED_CODES:
            raise KeyNotYetAccepted(
                f"AWS rejects key {key_id} that secret {secret_name} holds ({code}). A new key can take a few "
                "seconds to be accepted; a deactivated or deleted key never is: re-activate it, or " + FIX
            ) from None
        raise
    if not _same_user(arn.rsplit("/", 1)[-1], user) or ":user/" not in arn:
        raise StoredKeyUnusable(f"key {key_id} in secret {secret_name} authenticates as {arn}, not as user {user}")
    logger.info("user %s: key %s in %s authenticates as %s", user, key_id, secret_name, arn)
    return {"user": user, "keyId": key_id, "authenticatesAs": arn}


def _same_user(name: object, user: str) -> bool:
    """IAM user names ignore letter case: a secret written for "app" still holds a key of the user renamed "App"."""
    return isinstance(name, str) and name.lower() == user.lower()


def _read_secret_only(partition: str, account: str, secret_name: str) -> dict:
    """The session policy: of everything the member role may do, this session may only read one secret."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:{partition}:secretsmanager:*:{account}:secret:{secret_name}-??????",
            },
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
            },
        ],
    }


def _secrets_of(account: str | None, secret_name: str):
    """Secrets Manager in the user's account, as the member key check role there (<MEMBER_ROLE_NAME>-key-check): the
    secret lives next to its consumers. The session is new for each check and only reads this one secret's value."""
    account = account or os.environ.get("ACCOUNT_ID", "")
    partition = os.environ.get("PARTITION", "aws")
    role = f"arn:{partition}:iam::{account}:role/{os.environ.get('MEMBER_ROLE_NAME', 'iam-key-rotation-member')}-key-check"
    try:
        answer = boto3.client("sts").assume_role(
            RoleArn=role,
            RoleSessionName=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "iam-key-rotation-key-check")[:64],
            Policy=json.dumps(_read_secret_only(partition, account, secret_name)),
        )
    except ClientError as error:
        if error.response["Error"].get("Code") not in ("AccessDenied", "AccessDeniedException"):
            raise  # throttling, a service error: boto3 retried it; the state machine reports the user
        raise StoredKeyUnusable(
            f"the key check could not assume {role} to read the secret ({error.response['Error'].get('Code')}): "
            "check that the member stack there creates it and that it trusts the hub's key check role (docs/organizations.md)"
        ) from None
    credentials = answer["Credentials"]
    return boto3.client(
        "secretsmanager",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def _stored_credentials(secretsmanager, secret_name: str, user: str, key_id: str) -> dict:
    try:
        value = secretsmanager.get_secret_value(SecretId=secret_name)  # AWSCURRENT
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise StoredKeyUnusable(f"secret {secret_name} does not exist, so it cannot hold key {key_id}") from None
        raise
    try:
        credentials = json.loads(value.get("SecretString") or "")
    except ValueError:
        credentials = None
    if not isinstance(credentials, dict) or not all(
        isinstance(credentials.get(f), str) and credentials.get(f) for f in ("AccessKeyId", "SecretAccessKey")
    ):
        raise StoredKeyUnusable(
            f"secret {secret_name} is not the workflow's JSON "
            '({"Version": 1, "UserName", "AccessKeyId", "SecretAccessKey"}): store key '
            f"{key_id}'s secret in it by hand, or {FIX}"
        ) from None
    if not _same_user(credentials.get("UserName", user), user):
        raise StoredKeyUnusable(
            f"secret {secret_name} holds a key of user {credentials['UserName']}, not of {user}: {FIX}"
        )
    if credentials["AccessKeyId"] != key_id:
        raise StoredKeyUnusable(
            f"secret {secret_name} holds key {credentials['AccessKeyId']}, but its version names key {key_id}: "
            f"someone wrote it by hand: {FIX}"
        )
    return credentials
