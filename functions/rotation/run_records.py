"""A run's records in the run bucket (runs/<execution name>/...): the users to plan and to act on, in batches,
the results the Distributed Maps write, the whole report. JSON, encrypted with the stack's key, never a secret."""

from __future__ import annotations

import json

# Each batch is one child execution's input: it stays far below Step Functions' 256 KiB per payload.
MAX_BATCH_USERS = 100
MAX_BATCH_BYTES = 96 * 1024
# A batch to act on is smaller: each user's result may carry an error's cause, and the results are its output.
MAX_ACT_BATCH_USERS = 50


def write_json(s3, bucket: str, key: str, document) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document, separators=(",", ":")).encode(), ContentType="application/json")
    return key


def read_json(s3, bucket: str, key: str):
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def in_batches(items: list, max_items: int = MAX_BATCH_USERS, max_bytes: int = MAX_BATCH_BYTES) -> list[list]:
    """``items`` in order, cut into lists of at most ``max_items`` and about ``max_bytes`` of JSON each."""
    batches, batch, size = [], [], 0
    for item in items:
        item_size = len(json.dumps(item, separators=(",", ":"))) + 1
        if batch and (len(batch) >= max_items or size + item_size > max_bytes):
            batches.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += item_size
    return batches + ([batch] if batch else [])


def map_run_results(s3, written: dict) -> tuple[list[tuple[dict, dict]], list[tuple[dict, str, str]]]:
    """What a Distributed Map's ResultWriter wrote (``written`` is the Map's output: MapRunArn and
    ResultWriterDetails): ([(input, output)] of the child executions that succeeded, [(input, error, cause)] of
    those that did not)."""
    details = written["ResultWriterDetails"]
    manifest = read_json(s3, details["Bucket"], details["Key"])
    succeeded, failed = [], []
    for status, files in manifest["ResultFiles"].items():
        for result_file in files:
            for execution in read_json(s3, manifest["DestinationBucket"], result_file["Key"]):
                given = json.loads(execution["Input"])
                if status == "SUCCEEDED":
                    succeeded.append((given, json.loads(execution["Output"])))
                else:
                    failed.append((given, execution.get("Error") or status, execution.get("Cause") or ""))
    return succeeded, failed
