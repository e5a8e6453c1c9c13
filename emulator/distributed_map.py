"""Step Functions' Distributed Map, as AWS runs it, on moto's interpreter.

moto 5.2.5 evaluates a Distributed Map's items in-process and drops what AWS keeps. Each patch restores one AWS
behaviour (listed in faithful_moto's docstring; each has a test in tests/test_distributed_map.py that fails on
plain moto):
- every item is a child execution with its own name, ARN, status, input, output and history, listed by
  ``ListExecutions(mapRunArn=...)`` and readable with ``DescribeExecution`` and ``GetExecutionHistory``;
- ``ToleratedFailureCount`` and ``ToleratedFailurePercentage`` are enforced: past them the Map fails with
  ``States.ExceedToleratedFailureThreshold`` (moto lets every Map succeed);
- ``ResultWriter`` writes the child executions to ``<Prefix>/<map run id>/SUCCEEDED_0.json`` (and FAILED_0.json)
  and lists them in ``manifest.json`` (moto writes an empty manifest);
- a worker takes item after item in a loop (moto recurses once per item: about 900 items per worker end in a
  RecursionError and a run that never ends), and so does an inline Map's;
- ``ResultWriter``'s Parameters read the Map state's input (moto reads the Map's outputs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from unittest import mock

# The records AWS writes for each child execution (ResultWriter, Transformation NONE, OutputType JSON).
RESULT_FILE_STATUSES = ("SUCCEEDED", "FAILED", "PENDING")


@dataclass
class ChildExecution:
    arn: str
    name: str
    map_run_arn: str
    state_machine_arn: str
    input: object
    start: dt.datetime
    status: str = "RUNNING"
    stop: dt.datetime | None = None
    output: object = None
    error: str | None = None
    cause: str | None = None
    events: list = field(default_factory=list)

    # The attributes moto's responses read from an execution.
    @property
    def execution_arn(self):
        return self.arn

    @property
    def execution_input(self):
        return json.dumps(self.input)

    @property
    def start_date(self):
        return self.start

    @property
    def stop_date(self):
        return self.stop

    @property
    def output_details(self):
        return {"included": True}

    def result_record(self) -> dict:
        """What ResultWriter writes for this execution."""
        record = {
            "ExecutionArn": self.arn,
            "Input": json.dumps(self.input),
            "InputDetails": {"Included": True},
            "Name": self.name,
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE",
            "RedriveStatusReason": f"Execution is {self.status} and cannot be redriven",
            "StartDate": _iso(self.start),
            "StateMachineArn": self.state_machine_arn,
            "Status": self.status,
            "StopDate": _iso(self.stop),
        }
        if self.status == "SUCCEEDED":
            record.update(Output=json.dumps(self.output), OutputDetails={"Included": True})
        else:
            record.update(Error=self.error, Cause=self.cause)
        return record


class ChildExecutions:
    """Every child execution of every map run in the account, by map run."""

    def __init__(self):
        self._lock = threading.Lock()
        self.by_map_run: dict[str, list[ChildExecution]] = {}
        self.by_arn: dict[str, ChildExecution] = {}

    def add(self, child: ChildExecution) -> None:
        with self._lock:
            self.by_map_run.setdefault(child.map_run_arn, []).append(child)
            self.by_arn[child.arn] = child


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


@contextlib.contextmanager
def distributed_map(clock):
    """Apply the patches; ``clock`` is the emulator's faithful_moto.Clock. Yields the ChildExecutions."""
    from moto.stepfunctions.parser.api import (
        EvaluationFailedEventDetails,
        ExecutionFailedEventDetails,
        ExecutionStartedEventDetails,
        ExecutionSucceededEventDetails,
        HistoryEventExecutionDataDetails,
        HistoryEventType,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as distributed_worker,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (
        ResourceEvalS3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.result_writer_decl import ResultWriter
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext, EventManager
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    children = ChildExecutions()

    # --- one child execution per item --------------------------------------------------------------------------

    eval_job = distributed_worker.DistributedItemProcessorWorker._eval_job

    def eval_job_as_a_child_execution(worker, env, job):
        record = worker._map_run_record
        # <map run ARN> is ...:mapRun:<state machine>/<label>:<uuid>; a child is ...:execution:<state machine>/<label>:<name>
        map_run_id = record.map_run_arn.rsplit(":", 1)[1]
        name = f"{map_run_id[:8]}-{job.job_index:06d}"
        arn = record.map_run_arn.replace(":mapRun:", ":execution:").rsplit(":", 1)[0] + ":" + name
        child = ChildExecution(arn, name, record.map_run_arn, record.map_state_machine_arn, job.job_input, clock.now)
        env.event_manager = EventManager()  # the child's own history
        env.event_history_context = EventHistoryContext.of_program_start()
        env.states.context_object.context_object_data["Execution"] = {
            "Id": arn, "Input": job.job_input, "Name": name, "RoleArn": env.aws_execution_details.role_arn,
            "StartTime": _iso(clock.now),
        }
        env.event_manager.add_event(
            context=env.event_history_context,
            event_type=HistoryEventType.ExecutionStarted,
            event_details=EventDetails(
                executionStartedEventDetails=ExecutionStartedEventDetails(
                    input=to_json_str(job.job_input),
                    inputDetails=HistoryEventExecutionDataDetails(truncated=False),
                    roleArn=env.aws_execution_details.role_arn,
                )
            ),
            update_source_event_id=False,
        )
        eval_job(worker, env, job)
        child.stop = clock.now
        state = env.program_state()
        if isinstance(state, ProgramError) or job.job_output is None:
            error = (state.error if isinstance(state, ProgramError) else None) or {}
            child.status, child.error, child.cause = "FAILED", error.get("error"), error.get("cause")
            if not any(e["type"] == HistoryEventType.ExecutionFailed for e in env.event_manager.get_event_history()):
                env.event_manager.add_event(
                    context=env.event_history_context,
                    event_type=HistoryEventType.ExecutionFailed,
                    event_details=EventDetails(
                        executionFailedEventDetails=ExecutionFailedEventDetails(error=child.error or "", cause=child.cause or "")
                    ),
                )
        else:
            child.status, child.output = "SUCCEEDED", job.job_output
            if not any(e["type"] == HistoryEventType.ExecutionSucceeded for e in env.event_manager.get_event_history()):
                env.event_manager.add_event(
                    context=env.event_history_context,
                    event_type=HistoryEventType.ExecutionSucceeded,
                    event_details=EventDetails(
                        executionSucceededEventDetails=ExecutionSucceededEventDetails(output=to_json_str(job.job_output))
                    ),
                )
        child.events = env.event_manager.get_event_history()
        children.add(child)

    # --- workers take item after item, without recursion -------------------------------------------------------

    def pool_in_a_loop(inline: bool):
        """A worker's _eval_pool as a loop. An inline Map's iteration frames are closed, and the worker's next
        iteration continues the history from the last one's end; a Distributed Map's child frames are deleted
        (each child execution has a history of its own)."""

        def end(owner, frame):
            (owner.close_frame if inline else owner.delete_frame)(frame)

        def loop(worker, job, worker_frame):
            while True:
                if job is None:
                    end(worker._env, worker_frame)
                    return
                job_frame = worker_frame.open_inner_frame()
                worker._eval_job(env=job_frame, job=job)
                end(worker_frame, job_frame)
                if isinstance(job.job_output, Exception) or worker.stopped():
                    end(worker._env, worker_frame)
                    worker._job_pool.close_job(job)
                    return
                next_job = worker._job_pool.next_job()
                if next_job is None:
                    if inline:
                        last = job_frame.event_history_context.last_published_event_id
                        worker_frame.event_history_context.source_event_id = last
                    end(worker._env, worker_frame)
                    worker._job_pool.close_job(job)
                    return
                worker._job_pool.close_job(job)
                job = next_job

        return loop

    # --- failure tolerance ---------------------------------------------------------------------------------------

    map_run = DistributedIterationComponent._map_run

    def map_run_within_tolerance(component, env, eval_input):
        map_run(component, env, eval_input)
        counts = eval_input.map_run_record.item_counter
        total = counts.total.get()
        failed = counts.failed.get() + counts.timed_out.get() + counts.aborted.get()
        allowed_count = int(eval_input.tolerated_failure_count or 0)
        allowed_percentage = float(eval_input.tolerated_failure_percentage or 0)
        if failed and failed > allowed_count and (not total or 100.0 * failed / total > allowed_percentage):
            error_name = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
            cause = (
                f"The specified tolerated failure threshold was exceeded: {failed} of {total} items failed "
                f"(ToleratedFailureCount {allowed_count}, ToleratedFailurePercentage {allowed_percentage:g})"
            )
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=error_name,
                    event_type=HistoryEventType.EvaluationFailed,
                    event_details=EventDetails(
                        evaluationFailedEventDetails=EvaluationFailedEventDetails(error=error_name.error_name, cause=cause)
                    ),
                )
            )

    # --- ResultWriter ----------------------------------------------------------------------------------------------

    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import resource_eval_s3

    def write_results_as_aws_does(env, resource_runtime_part, state_credentials):
        parameters = env.stack.pop()
        env.stack.pop()  # the Map's outputs: AWS writes the child executions instead
        s3 = resource_eval_s3.boto_client_for(service="s3", region=resource_runtime_part.region, state_credentials=state_credentials)
        record = env.map_run_record_pool_manager.get_all().pop()
        prefix = parameters.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = prefix + record.map_run_arn.split(":")[-1] + "/"
        files = {status: [] for status in RESULT_FILE_STATUSES}
        runs = sorted(children.by_map_run.get(record.map_run_arn, []), key=lambda c: c.name)
        for status in ("SUCCEEDED", "FAILED"):
            records = [c.result_record() for c in runs if c.status == status]
            if records:
                body = json.dumps(records).encode()
                key = f"{folder}{status}_0.json"
                s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": record.map_run_arn, "ResultFiles": files}
        key = folder + "manifest.json"
        s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=json.dumps(manifest).encode())
        env.stack.append({"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key}})

    def parameters_from_the_state_input(writer, env):
        outputs = env.stack.pop()  # the Map's outputs: moto would resolve the Parameters' paths against them
        env.stack.append(env.states.get_input())
        writer.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()
        env.stack.extend([outputs, parameters])
        writer.resource_eval.eval_resource(env=env)

    # --- the API reads child executions ------------------------------------------------------------------------------

    describe_execution = StepFunctionsParserBackend.describe_execution
    get_execution_history = StepFunctionsParserBackend.get_execution_history
    list_executions = StepFunctionResponse.list_executions

    def describe_a_child_too(backend, execution_arn):
        return children.by_arn.get(execution_arn) or describe_execution(backend, execution_arn)

    def history_of_a_child_too(backend, execution_arn):
        child = children.by_arn.get(execution_arn)
        return {"events": child.events} if child else get_execution_history(backend, execution_arn)

    def list_a_map_runs_children_too(response):
        map_run_arn = response._get_param("mapRunArn")
        if not map_run_arn:
            return list_executions(response)
        from moto.core.responses import ActionResult

        listed = sorted(children.by_map_run.get(map_run_arn, []), key=lambda c: c.name)
        status = response._get_param("statusFilter")
        listed = [c for c in listed if not status or c.status == status]
        start = int(response._get_param("nextToken") or 0)
        end = start + (response._get_int_param("maxResults") or 100)
        page = [
            {"executionArn": c.arn, "name": c.name, "startDate": c.start, "stateMachineArn": c.state_machine_arn,
             "status": c.status, "mapRunArn": map_run_arn, **({"stopDate": c.stop} if c.stop else {})}
            for c in listed[start:end]
        ]
        return ActionResult({"executions": page, **({"nextToken": str(end)} if end < len(listed) else {})})

    patches = [
        mock.patch.object(distributed_worker.DistributedItemProcessorWorker, "_eval_job", eval_job_as_a_child_execution),
        mock.patch.object(distributed_worker.DistributedItemProcessorWorker, "_eval_pool", pool_in_a_loop(inline=False)),
        mock.patch.object(iteration_worker.IterationWorker, "_eval_pool", pool_in_a_loop(inline=True)),
        mock.patch.object(DistributedIterationComponent, "_map_run", map_run_within_tolerance),
        mock.patch.object(ResourceEvalS3, "_handle_put_object", staticmethod(write_results_as_aws_does)),
        mock.patch.object(ResultWriter, "_eval_body", parameters_from_the_state_input),
        mock.patch.object(StepFunctionsParserBackend, "describe_execution", describe_a_child_too),
        mock.patch.object(StepFunctionsParserBackend, "get_execution_history", history_of_a_child_too),
        mock.patch.object(StepFunctionResponse, "list_executions", list_a_map_runs_children_too),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield children
