"""Check the key is still inactive: asked just before a key is deleted (a person may have re-activated it since the
plan, and IAM deletes an Active key without asking). Read-only.

Event: ``{"user", "account", "keyId"}`` (it reads as the member role of the user's account).
Result: ``{"status": "Active" | "Inactive" | "Missing"}``.
"""

from __future__ import annotations

import reading


def handler(event, context):
    return {"status": reading.key_status(reading.for_event(event, "iam"), event["user"], event["keyId"])}
