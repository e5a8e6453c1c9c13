"""Look for unstored keys: after a failed create or store, ask IAM and the secret (never its value) rather than
believe the error. Read-only.

Event: ``{"user", "account", "secretName", "knownKeyIds", "since"}`` (it reads as the member role of the user's
account). Result: ``{"storedKeyId", "secretArn", "deleteKeyIds"}``:
the new key the secret holds after all (the rotation is then done) and that secret's ARN, and the keys this run
created that nobody holds.
"""

from __future__ import annotations

import logging

import decisions
import reading

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    keys, _ = reading.keys_of(reading.for_event(event, "iam"), event["user"], {})
    secret = reading.described_secret(reading.for_event(event, "secretsmanager"), event["secretName"])
    stored, unstored = decisions.keys_to_clean_up(set(event["knownKeyIds"]), keys, secret, decisions.parse_time(event["since"]))
    logger.info("user %s: after a failed rotation, stored %s, unstored %s", event["user"], stored, unstored)
    return {"storedKeyId": stored, "secretArn": secret.arn if stored else None, "deleteKeyIds": unstored}
