"""Check the key is still inactive: asked just before a key is deleted (a person may have re-activated it since the
plan, and IAM deletes an Active key without asking). Read-only.

Event: ``{"user", "keyId"}``. Result: ``{"status": "Active" | "Inactive" | "Missing"}``.
"""

from __future__ import annotations

import reading


def handler(event, context):
    return {"status": reading.key_status(reading.client("iam"), event["user"], event["keyId"])}
