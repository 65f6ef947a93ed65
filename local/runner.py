"""The event runner: reads the functions and their events from template.yaml and drives the
real handlers in-process, with real-shaped events, against a `LocalAws`.

    runner = EventRunner("template.yaml", aws, VirtualClock())
    ...put work on a queue or in a bucket...
    runner.run_until_idle()          # everything due now, until nothing is due or in flight
    runner.advance(20 * 60)          # virtual time: schedules, redeliveries, delays, retries
    runner.invocations               # what ran, with which event, and how it ended
    runner.stop()

Driven event sources:
- SQS: batches of BatchSize (receives of up to 10; MaximumBatchingWindowInSeconds waits on the
  clock for a full batch), the Lambda SQS event shape, delete on success, ReportBatchItemFailures
  honoured as Lambda does (an unknown/empty identifier or a malformed response fails the whole
  batch; without the setting a partial response is ignored), a raising handler deletes nothing.
  Redelivery after the visibility timeout and the move to the DLQ after maxReceiveCount are SQS's
  own (moto's). ScalingConfig.MaximumConcurrency caps concurrent invocations per source;
  FIFO groups stay in order because SQS holds a group back while a batch of it is in flight.
- S3 (Type: S3): the bucket notifies an internal queue (prefix/suffix filters are S3's own);
  s3:TestEvent is skipped; one invocation per object with the S3 event shape (key URL-encoded as
  real S3 does: space as '+', '/' kept).
- Schedule and ScheduleV2: rate(), cron() (and at() for ScheduleV2), Input or the scheduled-event
  shape, fired on the runner's clock.
S3 and schedules are asynchronous invocations: a failure is retried after 1 and 2 minutes
(EventInvokeConfig.MaximumRetryAttempts / MaximumEventAgeInSeconds honoured), then dropped.

Functions: CodeUri/Handler with Globals merged. Each concurrent invocation runs in an execution
environment of its own, as on Lambda: an import of the handler module by path under a unique name
(`_pecflow_fn_<LogicalId>_<n>`), with CodeUri and the layers' folders on sys.path, made when no
environment of the function is idle (its cold start; an import error is that invocation's error and
the environment is discarded) and reused warm afterwards, one invocation at a time. Every
function's environment goes into os.environ for the runner's life (handlers share the process),
with what boto3 needs to reach the LocalAws (AWS_ENDPOINT_URL, region, fake credentials) and
PECFLOW_CLOCK: two functions giving one variable different values is an error at start.

Refused at start, as AWS refuses the event source mapping: BatchSize out of range, BatchSize > 10
without a batching window, MaximumConcurrency outside 2..1000, a queue visibility timeout shorter
than the function timeout. FilterCriteria is refused too (not honoured: it would silently differ).

Not honoured: per-invocation runtime variables (AWS_LAMBDA_FUNCTION_NAME, ...: handlers share
os.environ); what libraries keep per process rather than per module is shared by the environments
(the logging tree, Powertools' `Metrics` class-level metric set: handlers use `EphemeralMetrics`);
interrupting a handler at its Timeout (an overrun is recorded as a timeout error
after it returns); Lambda's gradual SQS scale-up (concurrency goes to the limit at once); payload
limits; async on-failure destinations; ScheduleV2 FlexibleTimeWindow; event types other than
SQS, S3 and schedules (listed in `Function.not_driven`). One runner per LocalAws at a time.
"""

from __future__ import annotations

import base64
import calendar
import copy
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus, unquote_plus
from zoneinfo import ZoneInfo

from local import clock as clock_hook
from local.aws import LocalAws
from local.clock import CLOCK_ENV, CLOCK_HOOK, Clock, SystemClock
from local.template import TemplateError

log = logging.getLogger(__name__)

ASYNC_RETRY_DELAYS = (60, 120)  # Lambda's asynchronous retries: after 1, then 2 minutes
DEFAULT_ASYNC_RETRIES = 2
DEFAULT_MAX_EVENT_AGE = 6 * 3600
FIFO_MAX_BATCH = 10


# --- what the template declares -----------------------------------------------------------------


@dataclass(frozen=True)
class SqsSource:
    function: str
    name: str
    queue_name: str
    queue_arn: str
    queue_url: str
    fifo: bool
    batch_size: int
    batching_window: float
    max_concurrency: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class S3Source:
    function: str
    name: str
    bucket: str
    bucket_logical_id: str
    events: tuple[str, ...]
    filter_rules: tuple[tuple[str, str], ...]
    queue_name: str  # the internal queue the bucket notifies


@dataclass(frozen=True)
class ScheduleSource:
    function: str
    name: str
    kind: str  # Schedule (EventBridge rule) | ScheduleV2 (Scheduler)
    expression: str
    input: Any  # the parsed Input, or None for the scheduled-event shape
    resource_arn: str
    timezone: str = "UTC"
    start: float | None = None
    end: float | None = None


Source = SqsSource | S3Source | ScheduleSource


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    arn: str
    code_uri: Path
    handler: str
    runtime: str | None
    timeout: int
    memory_size: int
    environment: dict[str, str]
    reserved_concurrency: int | None
    async_retries: int
    max_event_age: int
    layer_paths: tuple[Path, ...]
    sources: tuple[Source, ...]
    not_driven: dict[str, str] = field(default_factory=dict)  # event name -> why


@dataclass(frozen=True)
class Invocation:
    """One handler call, as the runner saw it. Times are on the runner's clock."""

    function: str
    source: str
    kind: str  # sqs | s3 | schedule
    event: dict
    request_id: str
    started: float
    ended: float
    attempt: int = 1
    result: Any = None
    error: str | None = None  # "TypeName: message" when the handler failed
    traceback: str | None = field(default=None, repr=False)
    # SQS only: what happened to the batch afterwards
    deleted: tuple[str, ...] = ()  # message ids deleted from the queue
    retained: tuple[str, ...] = ()  # message ids left for redelivery
    batch_problem: str | None = None  # why a partial batch response failed the whole batch
    wall_started: float = field(default=0.0, repr=False)  # time.perf_counter(), for overlap checks
    wall_ended: float = field(default=0.0, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and self.batch_problem is None

    @property
    def message_ids(self) -> tuple[str, ...]:
        return tuple(r["messageId"] for r in self.event.get("Records", ()) if "messageId" in r)


@dataclass
class LambdaContext:
    """The context object the Python runtime passes (memory_limit_in_mb is a str there too)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float = field(repr=False)
    clock: Clock = field(repr=False)
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.now()) * 1000))


# --- the runner ---------------------------------------------------------------------------------


@dataclass
class _AsyncEvent:
    due: float
    function: str
    source: str
    kind: str
    event: dict
    first_at: float
    attempt: int = 1


@dataclass
class _SqsPoller:
    source: SqsSource
    buffer: list[dict] = field(default_factory=list)
    buffer_since: float = 0.0
    in_flight: int = 0


class EventRunner:
    def __init__(
        self,
        template_path: str | Path,
        aws: LocalAws,
        clock: Clock | None = None,
        *,
        functions: list[str] | None = None,
        default_concurrency: int = 10,
        max_workers: int = 32,
    ):
        """Drive the template's functions (or only `functions`, by logical id) against `aws`.
        `default_concurrency` caps an SQS source without ScalingConfig."""
        if Path(template_path).resolve() != aws.template.path:
            raise ValueError(f"the runner reads {template_path} but LocalAws serves {aws.template.path}")
        self.aws = aws
        self.clock: Clock = clock or SystemClock()
        self.default_concurrency = default_concurrency
        self._lock = threading.Condition(threading.RLock())
        self._drive_lock = threading.Lock()
        self._invocations: list[Invocation] = []
        self._instances: dict[str, list[ModuleType]] = {}  # every environment started, by function
        self._idle: dict[str, list[ModuleType]] = {}  # those not running an invocation
        self._patches: dict[str, dict[str, Any]] = {}  # what tests set through `module()`
        self._import_lock = threading.Lock()
        self._async: list[_AsyncEvent] = []
        self._in_flight = 0
        self._finished = 0  # invocations ended so far: one that ends may make more work due
        self._in_flight_by_function: dict[str, int] = {}
        self._saved_environ: dict[str, str | None] = {}
        self._added_paths: list[str] = []
        self._undo: list[Callable[[], None]] = []
        self._stopped = False
        self._sequencer = 0
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=THREAD_PREFIX)
        try:
            selected = functions or [r.logical_id for r in aws.template.of_type("AWS::Serverless::Function")]
            self.functions: dict[str, Function] = {fid: self._read_function(fid) for fid in selected}
            self._environments = {fid: f.environment for fid, f in self.functions.items()}
            self._install_environment()
            self._install_paths()
            aws.follow_clock(self.clock)
            self._undo.append(lambda: aws.follow_clock(None))
            previous = clock_hook.install(self.clock)
            self._undo.append(lambda: clock_hook.install(previous))
            self._undo.append(aws.on_reset(self._after_reset))
            self._sqs = [
                _SqsPoller(s) for f in self.functions.values() for s in f.sources if isinstance(s, SqsSource)
            ]
            self._s3 = [s for f in self.functions.values() for s in f.sources if isinstance(s, S3Source)]
            self._s3_queue_urls: dict[str, str] = {}
            for source in self._s3:
                self._s3_queue_urls[source.queue_name] = aws.notify_queue(
                    source.bucket_logical_id,
                    source.queue_name,
                    list(source.events),
                    list(source.filter_rules),
                )
                self._undo.append(lambda q=source.queue_name: aws.stop_notifying(q))
            self._drain_s3_test_events()
            now = self.clock.now()
            schedules = [
                s for f in self.functions.values() for s in f.sources if isinstance(s, ScheduleSource)
            ]
            self._schedules = {
                (s.function, s.name): (s, _expression(s).next_after(now, anchor=s.start or now))
                for s in schedules
            }
        except BaseException:
            self.stop()
            raise

    # --- public -------------------------------------------------------------------------------

    @property
    def invocations(self) -> list[Invocation]:
        """Every invocation so far, in the order they ended."""
        with self._lock:
            return list(self._invocations)

    def invocations_of(self, function: str, source: str | None = None) -> list[Invocation]:
        return [
            i for i in self.invocations if i.function == function and (source is None or i.source == source)
        ]

    def module(self, logical_id: str) -> FunctionModules:
        """A function's handler module, as tests inject faults into the real handler's wiring:
        reading an attribute reads it in an environment (started if none is); setting one sets it in
        every environment of the function, present and future."""
        if logical_id not in self.functions:
            raise KeyError(logical_id)
        return FunctionModules(self, logical_id)

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Process every source until nothing is due now and nothing is in flight. With a
        virtual clock, what waits on time (invisible or delayed messages, batching windows,
        async retries, schedules) waits for `advance`. `timeout` is in real seconds."""
        with self._driving():
            self._run_until_idle(timeout)

    def advance(self, seconds: float, timeout: float = 60.0) -> None:
        """Move the virtual clock forward, stopping at every moment something falls due on the
        way (a schedule, a message becoming visible, a delay ending, a batching window closing,
        an async retry) and processing it as it would have happened then."""
        if not self.clock.virtual:
            raise TypeError("advance needs a VirtualClock; the system clock moves by itself")
        deadline = time.monotonic() + timeout
        with self._driving():
            target = self.clock.now() + seconds
            self._run_until_idle(timeout)
            while (wake := self._next_wakeup()) is not None and wake <= target:
                self.clock.advance_to(wake)
                self._run_until_idle(max(0.1, deadline - time.monotonic()))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"advance({seconds}) took more than {timeout}s of real time")
            self.clock.advance_to(target)
            self._run_until_idle(max(0.1, deadline - time.monotonic()))

    def set_schedules_enabled(self, function: str, enabled: bool) -> None:
        """Disable or enable a function's schedules, as `aws scheduler update-schedule --state`
        does: a disabled schedule fires nothing (and `advance` does not stop at its ticks);
        enabled again, it fires from its next tick after now."""
        with self._lock:
            now = self.clock.now()
            for key, (source, at) in list(self._schedules.items()):
                if source.function != function:
                    continue
                if not enabled:
                    self._schedules[key] = (source, None)
                elif at is None:
                    self._schedules[key] = (
                        source,
                        _expression(source).next_after(now, anchor=source.start or now),
                    )

    def serve(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Run on the system clock until `stop` is set (for the demo and developers)."""
        while not stop.is_set():
            self.run_until_idle(timeout=3600)
            stop.wait(poll_interval)

    def stop(self) -> None:
        """Wait for running handlers, release buffered messages, put everything back."""
        if self._stopped:
            return
        self._stopped = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        for poller in getattr(self, "_sqs", []):
            self._release(poller)
        while self._undo:
            try:
                self._undo.pop()()
            except Exception:  # noqa: BLE001 - keep undoing the rest
                log.exception("while stopping the event runner")
        self._restore_environment()
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        for modules in self._instances.values():
            for module in modules:
                sys.modules.pop(module.__name__, None)

    def __enter__(self) -> EventRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- reading the template -----------------------------------------------------------------

    def _read_function(self, fid: str) -> Function:
        template, aws = self.aws.template, self.aws
        if fid not in template.resources:
            raise TemplateError(f"no function {fid} in {template.path}")
        p = template.function_properties(fid)
        code_uri = p.get("CodeUri")
        if not isinstance(code_uri, str) or "InlineCode" in p:
            raise TemplateError(f"{fid}: only a local CodeUri folder can run locally")
        invoke_config = aws.resolve(p.get("EventInvokeConfig") or {})
        function = Function(
            logical_id=fid,
            name=aws.physical(fid),
            arn=aws.arn(fid),
            code_uri=(template.root / code_uri).resolve(),
            handler=p["Handler"],
            runtime=p.get("Runtime"),
            timeout=int(aws.resolve(p.get("Timeout", 3))),
            memory_size=int(aws.resolve(p.get("MemorySize", 128))),
            environment=aws.function_environment(fid),
            reserved_concurrency=(
                int(aws.resolve(p["ReservedConcurrentExecutions"]))
                if p.get("ReservedConcurrentExecutions") is not None
                else None
            ),
            async_retries=int(invoke_config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
            max_event_age=int(invoke_config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE)),
            layer_paths=self._layer_paths(p.get("Layers") or []),
            sources=(),
        )
        sources, not_driven = [], {}
        for name, event in (p.get("Events") or {}).items():
            kind, props = event.get("Type"), event.get("Properties") or {}
            if kind == "SQS":
                source = self._sqs_source(function, name, props)
            elif kind == "S3":
                source = self._s3_source(function, name, props)
            elif kind in ("Schedule", "ScheduleV2"):
                source = self._schedule_source(function, name, kind, props)
            else:
                not_driven[name] = f"{kind} events are not driven by the local runner"
                continue
            if source is None:
                not_driven[name] = "disabled in the template"
            else:
                sources.append(source)
        return replace(function, sources=tuple(sources), not_driven=not_driven)

    def _layer_paths(self, layers: list) -> tuple[Path, ...]:
        paths = []
        for layer in layers:
            logical_id = layer.get("Ref") if isinstance(layer, dict) else None
            resource = self.aws.template.resources.get(logical_id or "")
            content = resource and (
                resource.properties.get("ContentUri") or resource.properties.get("Content")
            )
            if isinstance(content, str):
                folder = (self.aws.template.root / content).resolve()
                paths.append(folder / "python" if (folder / "python").is_dir() else folder)
        return tuple(paths)

    def _sqs_source(self, function: Function, name: str, p: dict) -> SqsSource | None:
        where = f"{function.logical_id}.{name}"
        if p.get("FilterCriteria"):
            raise NotImplementedError(f"{where}: FilterCriteria is not honoured by the local runner")
        if not _enabled(self.aws.resolve(p.get("Enabled", True))):
            return None
        arn = self.aws.resolve(p["Queue"])
        queue_name = arn.rsplit(":", 1)[-1]
        sqs = self.aws.client("sqs")
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        fifo = attributes.get("FifoQueue") == "true"
        batch_size = int(self.aws.resolve(p.get("BatchSize", 10)))
        window = float(self.aws.resolve(p.get("MaximumBatchingWindowInSeconds", 0)))
        concurrency = (self.aws.resolve(p.get("ScalingConfig") or {})).get("MaximumConcurrency")
        # What AWS refuses when the event source mapping is created, refused here too.
        if not 1 <= batch_size <= (FIFO_MAX_BATCH if fifo else 10_000):
            raise TemplateError(f"{where}: BatchSize {batch_size} is out of range for this queue")
        if batch_size > 10 and window < 1:
            raise TemplateError(f"{where}: BatchSize over 10 needs MaximumBatchingWindowInSeconds >= 1")
        if concurrency is not None and not 2 <= int(concurrency) <= 1000:
            raise TemplateError(f"{where}: MaximumConcurrency must be 2..1000, not {concurrency}")
        visibility = int(attributes.get("VisibilityTimeout", 30))
        if visibility < function.timeout:
            raise TemplateError(
                f"{where}: queue visibility timeout {visibility}s is less than the "
                f"function timeout {function.timeout}s (AWS rejects this mapping)"
            )
        return SqsSource(
            function=function.logical_id,
            name=name,
            queue_name=queue_name,
            queue_arn=arn,
            queue_url=url,
            fifo=fifo,
            batch_size=batch_size,
            batching_window=window,
            max_concurrency=int(concurrency) if concurrency is not None else self.default_concurrency,
            report_batch_item_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or ()),
        )

    def _s3_source(self, function: Function, name: str, p: dict) -> S3Source:
        bucket_ref = p["Bucket"]
        logical_id = bucket_ref.get("Ref") if isinstance(bucket_ref, dict) else None
        if logical_id not in self.aws.resources:
            raise TemplateError(f"{function.logical_id}.{name}: Bucket must be !Ref to a template's bucket")
        events = p["Events"] if isinstance(p["Events"], list) else [p["Events"]]
        rules = ((p.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
        base = re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.aws.stack_name}-s3-{function.logical_id}-{name}")
        if len(base) > 80:
            base = base[:71] + "-" + hashlib.sha1(base.encode()).hexdigest()[:8]
        return S3Source(
            function=function.logical_id,
            name=name,
            bucket=self.aws.physical(logical_id),
            bucket_logical_id=logical_id,
            events=tuple(self.aws.resolve(events)),
            filter_rules=tuple((r["Name"].lower(), self.aws.resolve(r["Value"])) for r in rules),
            queue_name=base,
        )

    def _schedule_source(self, function: Function, name: str, kind: str, p: dict) -> ScheduleSource | None:
        p = self.aws.resolve(p)
        state = p.get("State", "ENABLED" if _enabled(p.get("Enabled", True)) else "DISABLED")
        if str(state).upper() == "DISABLED":
            return None
        raw_input = p.get("Input")
        parsed = json.loads(raw_input) if isinstance(raw_input, str) else raw_input
        region, account = self.aws.region, self.aws.account_id
        resource_name = p.get("Name") or f"{self.aws.stack_name}-{function.logical_id}{name}"
        if kind == "Schedule":
            expression = p["Schedule"]
            arn = f"arn:aws:events:{region}:{account}:rule/{resource_name}"
            timezone, start, end = "UTC", None, None
        else:
            expression = p["ScheduleExpression"]
            group = p.get("GroupName", "default")
            arn = f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{resource_name}"
            timezone = p.get("ScheduleExpressionTimezone", "UTC")
            start = _timestamp(p["StartDate"]) if p.get("StartDate") else None
            end = _timestamp(p["EndDate"]) if p.get("EndDate") else None
        source = ScheduleSource(
            function=function.logical_id,
            name=name,
            kind=kind,
            expression=expression,
            input=parsed,
            resource_arn=arn,
            timezone=timezone,
            start=start,
            end=end,
        )
        _expression(source)  # a bad expression fails at start
        return source

    # --- environment, imports -----------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        owner: dict[str, str] = {}
        clashes = []
        for fid, variables in self._environments.items():
            for key, value in variables.items():
                if key in merged and merged[key] != value:
                    clashes.append(f"{key}: {owner[key]}={merged[key]!r} but {fid}={value!r}")
                merged.setdefault(key, value)
                owner.setdefault(key, fid)
        for key, value in {**self.aws.environment(), CLOCK_ENV: CLOCK_HOOK}.items():
            if merged.get(key, value) != value:
                clashes.append(
                    f"{key} is set by the local stack, but {owner[key]} sets it to {merged[key]!r}"
                )
            merged[key] = value
        if clashes:
            raise TemplateError(
                "functions share one process locally, so their environments must agree: " + "; ".join(clashes)
            )
        return merged

    def _install_environment(self) -> None:
        for key, value in self._environment().items():
            if key not in self._saved_environ:
                self._saved_environ[key] = os.environ.get(key)
            os.environ[key] = value

    def _restore_environment(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ.clear()

    def _after_reset(self) -> None:
        """ARNs of secrets and keys are new after a reset: recompute the environment."""
        self._environments = {fid: self.aws.function_environment(fid) for fid in self.functions}
        self._install_environment()

    def _install_paths(self) -> None:
        for function in self.functions.values():
            for path in (function.code_uri, *function.layer_paths):
                text = str(path)
                if text not in sys.path:
                    sys.path.insert(0, text)
                    self._added_paths.append(text)

    @contextmanager
    def _execution_environment(self, function: Function) -> Iterator[ModuleType]:
        """An idle execution environment of the function, or a new one (a cold start): for one
        invocation at a time."""
        fid = function.logical_id
        with self._import_lock:
            idle = self._idle.setdefault(fid, [])
            module = idle.pop() if idle else None
        if module is None:
            module = self._start_environment(function)
        try:
            yield module
        finally:
            with self._import_lock:
                self._idle[fid].append(module)

    def _start_environment(self, function: Function) -> ModuleType:
        module_path, _, _ = function.handler.rpartition(".")
        file = function.code_uri / (module_path.replace(".", "/") + ".py")
        if not file.is_file():
            file = function.code_uri / module_path.replace(".", "/") / "__init__.py"
        with self._import_lock:  # one import at a time: the handlers share sys.modules
            instances = self._instances.setdefault(function.logical_id, [])
            name = f"{_module_name(function.logical_id)}_{len(instances) + 1}"
            module = import_handler_module(name, file, module_path)
            for attribute, value in self._patches.get(function.logical_id, {}).items():
                setattr(module, attribute, value)
            instances.append(module)
            return module

    def _patch(self, fid: str, attribute: str, value: Any) -> None:
        with self._import_lock:
            self._patches.setdefault(fid, {})[attribute] = value
            for module in self._instances.get(fid, []):
                setattr(module, attribute, value)

    def _any_environment(self, fid: str) -> ModuleType:
        with self._import_lock:
            started = self._instances.get(fid)
            if started:
                return started[0]
        module = self._start_environment(self.functions[fid])
        with self._import_lock:
            self._idle.setdefault(fid, []).append(module)
        return module

    # --- the loop -----------------------------------------------------------------------------

    @contextmanager
    def _driving(self) -> Iterator[None]:
        """One driver at a time: run_until_idle/advance are not re-entrant."""
        if self._stopped:
            raise RuntimeError("the event runner is stopped")
        if not self._drive_lock.acquire(blocking=False):
            raise RuntimeError("the event runner is already being driven from another thread")
        try:
            yield
        finally:
            self._drive_lock.release()

    def _run_until_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                finished = self._finished
            progressed = self._pump()
            with self._lock:
                # idle only if no invocation ended while the pump looked: its deletes may have
                # freed a FIFO group's next messages after the pump found the group busy
                quiet = self._in_flight == 0 and self._finished == finished
                if not progressed and quiet and not self._waiting_in_real_time():
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not idle after {timeout}s: {self._in_flight} invocation(s) in flight"
                    )
                if not progressed:
                    self._lock.wait(0.02)

    def _waiting_in_real_time(self) -> bool:
        """On the system clock a batching window closes by itself: wait for it."""
        return not self.clock.virtual and any(p.buffer for p in self._sqs)

    def _pump(self) -> bool:
        now = self.clock.now()
        progressed = self._fire_schedules(now)
        progressed |= self._poll_s3(now)
        progressed |= self._dispatch_async(now)
        for poller in self._sqs:
            while self._has_room(poller.source.function, poller):
                batch = self._take_batch(poller, now)
                if not batch:
                    break
                self._submit(poller.source.function, self._run_sqs_batch, poller, batch, poller=poller)
                progressed = True
        return progressed

    def _next_wakeup(self) -> float | None:
        now = self.clock.now()
        times = [at for _, at in self._schedules.values() if at is not None]
        with self._lock:
            times += [event.due for event in self._async]
        times += [p.buffer_since + p.source.batching_window for p in self._sqs if p.buffer]
        queue_change = self.aws.sqs_next_change(
            [p.source.queue_name for p in self._sqs] + [s.queue_name for s in self._s3], now
        )
        if queue_change is not None:
            times.append(queue_change + 1e-6)  # moto keeps milliseconds: land just after
        return min((t for t in times if t > now), default=None)

    def _has_room(self, fid: str, poller: _SqsPoller | None = None) -> bool:
        with self._lock:
            if poller is not None and poller.in_flight >= poller.source.max_concurrency:
                return False
            reserved = self.functions[fid].reserved_concurrency
            return reserved is None or self._in_flight_by_function.get(fid, 0) < reserved

    def _submit(self, fid: str, work: Callable, *args: Any, poller: _SqsPoller | None = None) -> None:
        with self._lock:
            self._in_flight += 1
            self._in_flight_by_function[fid] = self._in_flight_by_function.get(fid, 0) + 1
            if poller is not None:
                poller.in_flight += 1

        def run() -> None:
            try:
                work(*args)
            except Exception:  # noqa: BLE001 - the runner outlives anything a handler does
                log.exception("event runner: %s failed outside the handler", fid)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._finished += 1
                    self._in_flight_by_function[fid] -= 1
                    if poller is not None:
                        poller.in_flight -= 1
                    self._lock.notify_all()

        self._executor.submit(run)

    # --- SQS ----------------------------------------------------------------------------------

    def _take_batch(self, poller: _SqsPoller, now: float) -> list[dict] | None:
        source = poller.source
        if poller.buffer or self.aws.sqs_ready(source.queue_name):
            self._fill(poller, now)
        if not poller.buffer:
            return None
        full = len(poller.buffer) >= source.batch_size
        if full or source.batching_window == 0 or now >= poller.buffer_since + source.batching_window:
            batch, poller.buffer = poller.buffer[: source.batch_size], poller.buffer[source.batch_size :]
            poller.buffer_since = now
            return batch
        return None

    def _fill(self, poller: _SqsPoller, now: float) -> None:
        source = poller.source
        while len(poller.buffer) < source.batch_size:
            wanted = min(10, source.batch_size - len(poller.buffer))
            try:
                messages = (
                    self.aws.client("sqs")
                    .receive_message(
                        QueueUrl=source.queue_url,
                        MaxNumberOfMessages=wanted,
                        WaitTimeSeconds=0,
                        MessageSystemAttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    )
                    .get("Messages", [])
                )
            except Exception:  # noqa: BLE001 - e.g. the queue went away in a reset
                log.exception("event runner: receiving from %s", source.queue_name)
                return
            if not messages:
                return
            if not poller.buffer:
                poller.buffer_since = now
            poller.buffer.extend(messages)
            if len(messages) < wanted:
                return

    def _release(self, poller: _SqsPoller) -> None:
        """Messages received for a batch that never ran go back to the queue at once."""
        if not poller.buffer or not self.aws.running:
            return
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(poller.buffer)
        ]
        poller.buffer = []
        for chunk in _chunks(entries, 10):
            try:
                self.aws.client("sqs").change_message_visibility_batch(
                    QueueUrl=poller.source.queue_url, Entries=chunk
                )
            except Exception:  # noqa: BLE001
                log.exception("event runner: releasing buffered messages")

    def _run_sqs_batch(self, poller: _SqsPoller, messages: list[dict]) -> None:
        source = poller.source
        event = {"Records": [_sqs_record(m, source.queue_arn, self.aws.region) for m in messages]}
        invocation = self._invoke(self.functions[source.function], source.name, "sqs", event)
        ids = [m["MessageId"] for m in messages]
        to_delete: list[str] = []
        problem = None
        if invocation.error is None:
            if source.report_batch_item_failures:
                failed, problem = _batch_item_failures(invocation.result, ids)
                to_delete = [] if problem else [i for i in ids if i not in failed]
            else:
                to_delete = ids
        handles = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        deleted = self._delete(source, [(i, handles[i]) for i in to_delete])
        self._record(
            replace(
                invocation,
                deleted=tuple(deleted),
                retained=tuple(i for i in ids if i not in deleted),
                batch_problem=problem,
            )
        )

    def _delete(self, source: SqsSource, messages: list[tuple[str, str]]) -> list[str]:
        deleted = []
        for chunk in _chunks(messages, 10):
            response = self.aws.client("sqs").delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": handle} for n, (_, handle) in enumerate(chunk)],
            )
            ok = {int(entry["Id"]) for entry in response.get("Successful", [])}
            deleted += [message_id for n, (message_id, _) in enumerate(chunk) if n in ok]
        return deleted

    # --- S3 -----------------------------------------------------------------------------------

    def _drain_s3_test_events(self) -> None:
        self._poll_s3(self.clock.now())

    def _poll_s3(self, now: float) -> bool:
        progressed = False
        sqs = self.aws.client("sqs")
        for source in self._s3:
            if not self.aws.sqs_ready(source.queue_name):
                continue
            url = self._s3_queue_urls[source.queue_name]
            while messages := sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
            ).get("Messages", []):
                for message in messages:
                    body = json.loads(message["Body"])
                    sent = int(message["Attributes"]["SentTimestamp"])
                    for record in body.get("Records", []):  # s3:TestEvent has none
                        self._sequencer += 1
                        event = {"Records": [self._s3_record(record, sent)]}
                        self._enqueue(_AsyncEvent(now, source.function, source.name, "s3", event, now))
                        progressed = True
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
                    ],
                )
        return progressed

    def _s3_record(self, record: dict, sent_millis: int) -> dict:
        """moto's record, completed and with the key encoded as real S3 encodes it."""
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])
        obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
        if record["eventName"].startswith("ObjectCreated"):
            obj["size"] = s3["object"]["size"]
            obj["eTag"] = s3["object"]["eTag"]
            version = self._version_id(s3["bucket"]["name"], key, s3["object"]["eTag"])
            if version:
                obj["versionId"] = version
        obj["sequencer"] = f"{int(sent_millis):012X}{self._sequencer:06X}"
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": record.get("awsRegion", self.aws.region),
            "eventTime": _iso_millis(sent_millis / 1000),
            "eventName": record["eventName"],
            "userIdentity": {"principalId": "AWS:AIDAPECFLOWLOCAL"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {
                "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": s3.get("configurationId", ""),
                "bucket": {
                    "name": s3["bucket"]["name"],
                    "ownerIdentity": {"principalId": "A1PECFLOWLOCAL"},
                    "arn": s3["bucket"]["arn"],
                },
                "object": obj,
            },
        }

    def _version_id(self, bucket: str, key: str, etag: str) -> str | None:
        try:
            versions = (
                self.aws.client("s3").list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
            )
        except Exception:  # noqa: BLE001 - best effort: real events carry it, handlers rarely need it
            return None
        for version in versions:  # newest first
            if (
                version["Key"] == key
                and version["ETag"].strip('"') == etag
                and version["VersionId"] != "null"
            ):
                return version["VersionId"]
        return None

    # --- schedules and asynchronous invocations ------------------------------------------------

    def _fire_schedules(self, now: float) -> bool:
        fired = False
        for key, (source, at) in list(self._schedules.items()):
            expression = _expression(source)
            while at is not None and at <= now:
                if source.end is None or at <= source.end:
                    event = (
                        _scheduler_context(source.input, source, at)
                        if source.input is not None
                        else self._scheduled_event(source, at)
                    )
                    self._enqueue(
                        _AsyncEvent(at, source.function, source.name, "schedule", copy.deepcopy(event), at)
                    )
                    fired = True
                at = expression.next_after(at, anchor=source.start or at)
            self._schedules[key] = (source, at)
        return fired

    def _scheduled_event(self, source: ScheduleSource, at: float) -> dict:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events" if source.kind == "Schedule" else "aws.scheduler",
            "account": self.aws.account_id,
            "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.aws.region,
            "resources": [source.resource_arn],
            "detail": {},
        }

    def _dispatch_async(self, now: float) -> bool:
        progressed = False
        with self._lock:
            due = sorted((e for e in self._async if e.due <= now), key=lambda e: e.due)
        for item in due:
            if self._has_room(item.function):
                with self._lock:
                    self._async.remove(item)
                self._submit(item.function, self._run_async, item)
                progressed = True
        return progressed

    def _enqueue(self, item: _AsyncEvent) -> None:
        with self._lock:
            self._async.append(item)

    def _run_async(self, item: _AsyncEvent) -> None:
        function = self.functions[item.function]
        invocation = self._invoke(function, item.source, item.kind, item.event, attempt=item.attempt)
        self._record(invocation)
        if invocation.error is None or item.attempt > function.async_retries:
            return
        due = self.clock.now() + ASYNC_RETRY_DELAYS[min(item.attempt, len(ASYNC_RETRY_DELAYS)) - 1]
        if due - item.first_at <= function.max_event_age:
            self._enqueue(replace(item, due=due, attempt=item.attempt + 1))

    # --- one invocation -----------------------------------------------------------------------

    def invoke(self, logical_id: str, event: dict, source: str = "HttpApi") -> Invocation:
        """A synchronous invocation (API Gateway's): the handler's answer, or its error as the
        caller would see it, recorded with the others."""
        invocation = self._invoke(self.functions[logical_id], source, source, event)
        self._record(invocation)
        return invocation

    def _invoke(
        self, function: Function, source: str, kind: str, event: dict, attempt: int = 1
    ) -> Invocation:
        request_id = str(uuid.uuid4())
        started, wall_started = self.clock.now(), time.perf_counter()
        context = LambdaContext(
            function_name=function.name,
            function_version="$LATEST",
            invoked_function_arn=function.arn,
            memory_limit_in_mb=str(function.memory_size),
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{function.name}",
            log_stream_name=f"{datetime.fromtimestamp(started, UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            deadline=started + function.timeout,
            clock=self.clock,
        )
        result, error, trace = None, None, None
        try:
            with self._execution_environment(function) as module:
                handler = getattr(module, function.handler.rpartition(".")[2])
                result = handler(copy.deepcopy(event), context)
            json.dumps(result)  # Lambda serialises the response: it must be JSON
            if self.clock.now() - started > function.timeout:
                raise TimeoutError(f"Task timed out after {function.timeout}.00 seconds")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - recorded, never raised
            result, error, trace = None, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        return Invocation(
            function=function.logical_id,
            source=source,
            kind=kind,
            event=event,
            request_id=request_id,
            started=started,
            ended=self.clock.now(),
            attempt=attempt,
            result=result,
            error=error,
            traceback=trace,
            wall_started=wall_started,
            wall_ended=time.perf_counter(),
        )

    def _record(self, invocation: Invocation) -> None:
        if invocation.error:
            log.info("%s (%s) failed: %s", invocation.function, invocation.source, invocation.error)
        with self._lock:
            self._invocations.append(invocation)


class FunctionModules:
    """What `EventRunner.module` returns: a function's handler module across its environments."""

    def __init__(self, runner: EventRunner, logical_id: str):
        object.__setattr__(self, "_runner", runner)
        object.__setattr__(self, "_fid", logical_id)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._runner._any_environment(self._fid), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        self._runner._patch(self._fid, attribute, value)


# --- event shapes -------------------------------------------------------------------------------

_SQS_ATTRIBUTE_ORDER = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
)


def _sqs_record(message: dict, queue_arn: str, region: str) -> dict:
    """One record of Lambda's SQS event, from a ReceiveMessage result."""
    attributes = message.get("Attributes", {})
    if "MessageGroupId" in attributes and "SequenceNumber" not in attributes:
        # moto gives FIFO messages deduplicated by content no SequenceNumber; real SQS always
        # does. A stand-in: stable per message, ordered by send time (millisecond resolution).
        suffix = int(hashlib.md5(message["MessageId"].encode()).hexdigest(), 16) % 10**7
        attributes = {**attributes, "SequenceNumber": f"{int(attributes['SentTimestamp']):013d}{suffix:07d}"}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in _SQS_ATTRIBUTE_ORDER if name in attributes},
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        {
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
    )
    return record


def _lambda_message_attribute(value: dict) -> dict:
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    attribute["stringListValues"] = value.get("StringListValues", [])
    attribute["binaryListValues"] = [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def _batch_item_failures(result: Any, message_ids: list[str]) -> tuple[set[str], str | None]:
    """The failed message ids of a partial batch response, or why Lambda would fail the whole
    batch: a response that is not an object, batchItemFailures not a list, an entry without
    itemIdentifier, or an itemIdentifier that is empty, null or not in the batch."""
    if result is None:
        return set(), None
    if not isinstance(result, dict):
        return set(), f"the response is a {type(result).__name__}, not a batch response"
    failures = result.get("batchItemFailures")
    if failures is None:
        return set(), None
    if not isinstance(failures, list):
        return set(), "batchItemFailures is not a list"
    failed = set()
    for item in failures:
        if not isinstance(item, dict) or "itemIdentifier" not in item:
            return set(), f"batch item failure {item!r} has no itemIdentifier"
        identifier = item["itemIdentifier"]
        if identifier in (None, ""):
            return set(), "an itemIdentifier is null or empty"
        if identifier not in message_ids:
            return set(), f"itemIdentifier {identifier!r} is not a message of the batch"
        failed.add(identifier)
    return failed, None


# --- schedule expressions -----------------------------------------------------------------------


class _Rate:
    def __init__(self, seconds: int):
        self.seconds = seconds

    def next_after(self, t: float, anchor: float) -> float:
        if t < anchor:
            return anchor + self.seconds
        return anchor + (math.floor((t - anchor) / self.seconds) + 1) * self.seconds


class _At:
    def __init__(self, when: float):
        self.when = when

    def next_after(self, t: float, anchor: float) -> float | None:
        return self.when if self.when > t else None


_MONTHS = {name.upper(): n for n, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


class _Cron:
    """EventBridge cron: minutes hours day-of-month month day-of-week year, one of the two day
    fields '?'. Supports * ? , - / names, L (last day of month), nL (last weekday n), n#k."""

    def __init__(self, fields: list[str], timezone: str):
        if len(fields) != 6:
            raise TemplateError(f"cron needs 6 fields, got {len(fields)}")
        minutes, hours, self.dom, months, self.dow, years = fields
        if (self.dom == "?") == (self.dow == "?"):
            raise TemplateError("cron: exactly one of day-of-month and day-of-week must be '?'")
        self.minutes = sorted(_cron_values(minutes, 0, 59))
        self.hours = sorted(_cron_values(hours, 0, 23))
        self.months = _cron_values(months, 1, 12, _MONTHS)
        self.years = None if years in ("*", "?") else _cron_values(years, 1970, 2199)
        self.tz = _zone(timezone)
        if self.dom not in ("?", "L") and "W" in self.dom:
            raise TemplateError("cron: W (nearest weekday) is not supported locally")
        self.dom_values = None if self.dom in ("?", "L") else _cron_values(self.dom, 1, 31)
        self.dow_values = (
            None
            if self.dow == "?" or "L" in self.dow or "#" in self.dow
            else _cron_values(self.dow, 1, 7, _WEEKDAYS)
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        if self.dom == "L":
            return day.day == last
        if self.dom_values is not None:
            return day.day in self.dom_values
        weekday = (day.weekday() + 1) % 7 + 1  # AWS: 1 = Sunday ... 7 = Saturday
        if self.dow.endswith("L"):
            return weekday == _weekday(self.dow[:-1] or "7") and day.day > last - 7
        if "#" in self.dow:
            wanted, nth = self.dow.split("#")
            return weekday == _weekday(wanted) and (day.day - 1) // 7 + 1 == int(nth)
        return weekday in self.dow_values

    def next_after(self, t: float, anchor: float) -> float | None:
        local = datetime.fromtimestamp(t, self.tz).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = local.date()
        for offset in range(366 * 8):
            current = day + timedelta(days=offset)
            if not self._day_matches(current):
                continue
            earliest = local.hour * 60 + local.minute if offset == 0 else 0
            for hour in self.hours:
                for minute in self.minutes:
                    if hour * 60 + minute >= earliest:
                        when = datetime(
                            current.year, current.month, current.day, hour, minute, tzinfo=self.tz
                        )
                        return when.timestamp()
        return None


def _weekday(text: str) -> int:
    return _WEEKDAYS[text.upper()] if text.upper() in _WEEKDAYS else int(text)


def _cron_values(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    def value(part: str) -> int:
        return (names or {}).get(part.upper(), None) or int(part)

    values: set[int] = set()
    for part in text.split(","):
        part, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if part in ("*", "?"):
            first, last = low, high
        elif "-" in part:
            first, last = (value(p) for p in part.split("-", 1))
        else:
            first = value(part)
            last = high if step_text else first
        span = range(first, last + 1) if first <= last else [*range(first, high + 1), *range(low, last + 1)]
        values.update(list(span)[::step])
    if not values or min(values) < low or max(values) > high:
        raise TemplateError(f"cron field {text!r} is outside {low}..{high}")
    return frozenset(values)


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


def import_handler_module(name: str, file: Path, module_path: str) -> ModuleType:
    """Import a handler's file as module `name` (a cold start: the function reads its settings
    here), with Lambda's message when the file is not there."""
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None or not file.is_file():
        raise ImportError(f"Unable to import module '{module_path}': no {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _scheduler_context(value, source: ScheduleSource, at: float):
    """The schedule's Input with EventBridge Scheduler's context attributes filled in (ScheduleV2)."""
    if source.kind != "ScheduleV2":
        return copy.deepcopy(value)
    if isinstance(value, dict):
        return {k: _scheduler_context(v, source, at) for k, v in value.items()}
    if isinstance(value, list):
        return [_scheduler_context(v, source, at) for v in value]
    if isinstance(value, str):
        attributes = {
            "<aws.scheduler.scheduled-time>": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "<aws.scheduler.schedule-arn>": source.resource_arn,
            "<aws.scheduler.execution-id>": uuid.uuid4().hex[:16],
            "<aws.scheduler.attempt-number>": "1",
        }
        for name, filled in attributes.items():
            value = value.replace(name, filled)
    return value


def _expression(source: ScheduleSource) -> _Rate | _Cron | _At:
    text = source.expression.strip()
    if match := _RATE.match(text):
        value, unit = int(match.group(1)), match.group(2)
        if value < 1:
            raise TemplateError(f"{text}: the rate must be positive")
        return _Rate(value * _UNITS[unit.rstrip("s")])
    if text.startswith("cron(") and text.endswith(")"):
        return _Cron(text[5:-1].split(), source.timezone)
    if text.startswith("at(") and text.endswith(")") and source.kind == "ScheduleV2":
        when = datetime.fromisoformat(text[3:-1]).replace(tzinfo=_zone(source.timezone))
        return _At(when.timestamp())
    raise TemplateError(f"{source.function}.{source.name}: unsupported schedule expression {text!r}")


# --- small helpers ------------------------------------------------------------------------------


def _zone(name: str) -> Any:
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


THREAD_PREFIX = "pecflow-runner"  # the threads that run the handlers


def _module_name(logical_id: str) -> str:
    return f"_pecflow_fn_{logical_id}"


def _enabled(value: Any) -> bool:
    return value.strip().lower() != "false" if isinstance(value, str) else bool(value)


def _timestamp(value: Any) -> float:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _iso_millis(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
