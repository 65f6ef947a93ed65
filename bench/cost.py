"""AWS cost per message: a campaign of N recipients with its receipts ingested (sent), and N
certified messages received, on the local stack (Dovecot, the simulated providers, moto, the
event runner driving the real handlers from template.yaml).

Every AWS request the handlers make is counted (by function, service and operation: a wrapper
on botocore's request, attributed to the invocation running in that thread), plus what Lambda's
SQS event source mapping does for them (receives that return messages, batch deletes).
DynamoDB capacity is estimated from the items themselves: each written item is read before and
after (outside the count) to size it, WRU per 1 KB of the larger image, ×2 in transactions,
plus one index write per GSI whose projection changed (the table's GSIs as deployed from
template.yaml: keys, projection); a failed conditional write pays for the item it read. Reads:
RRU per 4 KB returned (½ eventually consistent, ×2 in transactions). Lambda: the CPU time of
each invocation's thread (measured: the machine's other work and moto's own stay out; divided
by the function's share of a vCPU, MemorySize / 1,769 MB, as Lambda allots CPU), plus a
modelled round trip per AWS request (LATENCY_MS below), at the function's MemorySize, arm64; a
request each (IMAP and SMTP waits are left out: the same whatever the code does). X-Ray: a
trace per invocation of a function with `Tracing: Active` (the default sampling keeps nearly
all at this rate: an upper bound). CloudWatch Logs: the bytes the handlers print (logs and EMF
metrics) plus Lambda's own START/END/REPORT lines. Prices: bench/prices.json (region, date,
source). Storage is left out except the first month of S3 Standard for the bytes archived.

The campaign mailbox's quota is N/2 per 20 minutes, so half the jobs wait for a slot, as in a
real campaign larger than the provider's window (and the suite's 500-row test). --quick: 8.

Measured (-n 120, eu-west-1 prices of 2026-11-26): main's code $1.0726 per 10,000 sent (32.2
requests, 58.6 WRU + 36.8 GSI WRU per message) and $0.2125 per 10,000 received; after the
counters item, reconcile-then-record, ByLocation's projection, quota-before-render, X-Ray off by
default and the 12-hour password cache: $0.7927 sent (30.0 requests, 48.6 + 20.8 GSI WRU) and
$0.2047 received; after the inbox's words without the mailbox's own address, a provider's
From and a receipt's subject prefix, no ByKind key for the common kinds, the cursor written per
fetched batch, OutgoingTable's ByCampaign keys only and a job created by two puts: $0.6269 sent
(30.2 requests, 35.8 + 12.3 GSI WRU) and $0.1626 received (4.2 requests, 7.0 + 6.0 GSI WRU);
from $0.5911 sent and $0.1552 received (2026-11-27), MessagesTable's ByDate keys only (1 WRU a
record, not 2: -2 GSI WRU per message sent, its two receipts, -1 per message received): $0.5792
sent (30.2 requests, 35.8 + 10.3 GSI WRU) and $0.1483 received (4.2 requests, 7.0 + 5.0 GSI WRU);
from $0.5677 sent and $0.1445 received (with fewer log lines), a job's row under 1 KB when
delivered (994 bytes, from 1,246: what only sending needs removed past it, a receipt kept
without what its own record says, no created_at beside at_pending), so that the poller's two
reconcile transactions take 2 WRU each on OutgoingTable, not 3 on average (6 -> 4 WRU per
message): $0.5542 sent (29.6 requests, 33.6 + 10.3 GSI WRU). Then an accettazione whose
avvenuta consegna is in the same fetched batch leaves its move to it (one reconcile transaction
a delivered message, not two) and a sent job is a debug line: $0.5350 sent (31.4 requests, 30.7 +
10.3 GSI WRU) and $0.1449 received.
From 2026-11-27 the Lambda duration divides the measured CPU time by the function's vCPU share
(1,024 MB: 0.58 of a vCPU), as Lambda allots CPU; the figures above did not. Main's code at the
start (03df173) measured again with this model, the baseline the targets halve: $1.0354 sent
(32.3 requests, 58.6 + 36.8 GSI WRU, X-Ray $0.0804, Lambda $0.0768) and $0.2044 received
(5.1 requests, 11.0 + 8.0 GSI WRU). Now: $0.5475 sent (53 % of it: 30.8 requests, 30.9 + 10.3
GSI WRU, Lambda $0.0651) and $0.1471 received (72 %: 4.2 requests, 7.0 + 5.0 GSI WRU).
From $0.5465 sent and $0.1468 received, a message record under 1 KB (largest 957 B, from 1,882:
the signer kept once, what the record can be told from left out): $0.5330 sent (29.0 + 10.3 GSI
WRU; MessagesTable 2.02 WRU a message, from 4.00) and $0.1406 received (6.0 + 5.0 GSI WRU).
On its own, the inbox's words as postings (one item per word, hour and poll batch, or a few
entries appended to their week's or day's open posting, not a copy of the row per word), from
$0.5467 sent and $0.1478 received measured alongside: $0.4945 sent (28.9 requests, 24.6 + 10.3
GSI WRU) and $0.1278 received (3.2 requests, 4.7 + 5.0 GSI WRU). On its own, an accettazione
written by its batch's consegna transaction (not by an UpdateItem of its own): from $0.5476 to
$0.5337 sent. All three together (2026-11-27, d7097e9): $0.4713 sent (46 % of the baseline:
26.8 requests, 21.7 + 10.3 GSI WRU, DynamoDB $0.2326, S3 $0.1548, Lambda $0.0569) and $0.1229
received (60 %: 4.6 requests, 3.8 + 5.0 GSI WRU, DynamoDB $0.0619, S3 $0.0500, Lambda $0.0107).
From 2026-11-27 (third session) the meter's own work is left out of the functions' CPU: it reads
each item a write touches before and after (to size it), in the function's thread, and that CPU
was counted as the function's (6 to 15 s of a run). Measured again with this meter, close in
time, the machine loaded alike (a soak on one core): the baseline (03df173) $1.0095 sent and
$0.1986 received (the targets: $0.5048 and $0.0993; X-Ray $0.0804, Lambda $0.0523 and $0.0096);
the session's start (05cd463) $0.4610 sent and $0.1210 received (61 %). Then, each first alone:
MessagesTable's ByLocation replaced by each mailbox's UID map, one item per fetched batch (0.04
WRU a message, not a GSI write): from $0.4708 sent and $0.1226 received to $0.4546 and $0.1160
(the previous meter); InboxTable's ByHandling folded into ByList (a message's list is its presa
in carico's state, the list of all messages the three merged) and MessagesTable's ByDate gone
(a period's readers read the mailbox's partition): $0.4601 and $0.1093 (the previous meter,
6.8 WRU a message received from 8.8); the three together $0.4449 and $0.1024 (previous meter),
$0.4303 and $0.0998 (this one); and a batch's new rows written at its settle with the postings
(one BatchWriteItem, not a PutItem each): $0.4281 sent (42 % of the baseline: 25.3 requests,
22.0 + 6.3 GSI WRU) and $0.0987 received (49.7 %: 3.7 requests, 3.8 + 2.0 GSI WRU, DynamoDB
$0.0410, S3 $0.0500, Lambda $0.0074); with the previous meter $0.4411 and $0.1009 (43 % and 49 %
of its baseline, $1.0354 and $0.2044). What remains a message received: its archive PUT (fixed),
its record (1 WRU), its inbox row (1) with ByList and ByThread (2), the word postings (1.65: a
word a poll brings for few messages is an append of its own) and the UID map and cursor (0.15).
--by-table: WRU per message by table and index, and each table's largest item at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import smtplib
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _env import REPO  # first: the paths and fake AWS credentials

from local.aws import item_size as _size

BOX = "ufficio@pec.alfa.test"
CAMPAIGN = "costi"
POLL = 5 * 60
STEP = 60
# a realistic round trip per request from Lambda in the same region (replaces moto's, measured)
LATENCY_MS = {"dynamodb": 6, "s3": 25, "sqs": 10, "secretsmanager": 15, "monitoring": 10}
PUT_CLASS = {"PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2", "ListObjectVersions",
             "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "PutObjectTagging",
             "PutObjectRetention", "PutObjectLegalHold"}  # fmt: skip
FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
ESM = "(SQS event source)"
FULL_VCPU_MB = 1769  # Lambda: the memory at which a function has the equivalent of one vCPU


@dataclass
class Line:
    requests: int = 0
    wru: float = 0.0
    gsi_wru: float = 0.0
    rru: float = 0.0
    bytes_put: int = 0


@dataclass
class Phase:
    lines: dict[tuple[str, str, str], Line] = field(default_factory=lambda: defaultdict(Line))
    waited: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # label -> s on moto
    modelled: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # label -> s
    log_bytes: Counter = field(default_factory=Counter)
    fifo: dict[str, bool] = field(default_factory=dict)
    by_table: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))  # WRU


class Meter:
    """Counts what the handlers ask AWS, attributed by thread to the invocation running there."""

    def __init__(self, dynamodb: Any):
        self.local = threading.local()
        self.phase: Phase | None = None
        self.ddb = dynamodb  # a low-level client for sizing items, never counted
        self._tables: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.cpu: dict[str, float] = {}  # invocation request id -> CPU seconds of its thread
        self.metering = 0.0  # CPU seconds the meter spent in the functions' threads, left out of theirs

    def label(self) -> str | None:
        return getattr(self.local, "label", None)

    def labelled(self, label: str, call: Any, *args: Any, **kw: Any) -> Any:
        previous = self.label()
        self.local.label = label
        try:
            return call(*args, **kw)
        finally:
            self.local.label = previous

    def install(self) -> None:
        from botocore.client import BaseClient

        from local.runner import EventRunner

        meter, make_request = self, BaseClient._make_request

        def counted(client: Any, operation_model: Any, request_dict: dict, request_context: dict) -> Any:
            phase, label = meter.phase, meter.label()
            if phase is None or label is None or getattr(meter.local, "quiet", False):
                return make_request(client, operation_model, request_dict, request_context)
            service = client.meta.service_model.endpoint_prefix
            return meter.count(phase, label, service, operation_model.name, request_dict,
                               lambda: make_request(client, operation_model, request_dict, request_context))  # fmt: skip

        BaseClient._make_request = counted
        invoke, fill, delete = EventRunner._invoke, EventRunner._fill, EventRunner._delete

        def timed(runner: Any, function: Any, *a: Any, **k: Any) -> Any:
            cpu, metering = time.thread_time(), getattr(meter.local, "metering", 0.0)
            invocation = meter.labelled(function.logical_id, invoke, runner, function, *a, **k)
            # the meter's own work in this thread (reading each written item before and after,
            # to size it) is no part of the function's
            metered = getattr(meter.local, "metering", 0.0) - metering
            meter.cpu[invocation.request_id] = time.thread_time() - cpu - metered
            meter.metering += metered
            return invocation

        EventRunner._invoke = timed
        EventRunner._fill = lambda runner, *a, **k: meter.labelled(ESM, fill, runner, *a, **k)
        EventRunner._delete = lambda runner, *a, **k: meter.labelled(ESM, delete, runner, *a, **k)

    # --- one request ------------------------------------------------------------------------
    def count(self, phase: Phase, label: str, service: str, operation: str, request: dict, call: Any) -> Any:
        entered = time.thread_time()
        body = _body(request)
        writes = self._writes(operation, body) if service == "dynamodb" else []
        before = [self._item(t, k) for t, k, _, _ in writes]
        started, calling = time.perf_counter(), time.thread_time()
        error = None
        try:
            http, parsed = call()
        except Exception as exc:
            error, http, parsed = exc, None, {}
        waited, called = time.perf_counter() - started, time.thread_time() - calling
        try:
            return self._counted(phase, label, service, operation, request, body, writes, before,
                                 error, http, parsed, waited)  # fmt: skip
        finally:
            self.local.metering = getattr(self.local, "metering", 0.0) + time.thread_time() - entered - called

    def _counted(self, phase: Phase, label: str, service: str, operation: str, request: dict, body: dict,
                 writes: list, before: list, error: Any, http: Any, parsed: Any, waited: float) -> Any:  # fmt: skip
        if isinstance(parsed, dict) and parsed.get("Error"):
            error = error or parsed["Error"]
        line = Line(requests=1)
        if service == "dynamodb":
            self._capacity(line, operation, body, parsed, writes, before, failed=error is not None,
                           by_table=(phase.by_table, label, operation))  # fmt: skip
        elif service == "sqs" and operation == "ReceiveMessage" and not (parsed or {}).get("Messages"):
            line.requests = 0  # Lambda's long polling of an idle queue: a cost per hour, not per message
        elif service == "s3" and operation == "PutObject":
            line.bytes_put = int(request.get("headers", {}).get("Content-Length") or 0) or len(
                request.get("body") or b"" if isinstance(request.get("body"), bytes) else b""
            )
        with self._lock:
            key = (label, service, operation)
            total = phase.lines[key]
            for name in ("requests", "wru", "gsi_wru", "rru", "bytes_put"):
                setattr(total, name, getattr(total, name) + getattr(line, name))
            phase.waited[label] += waited
            phase.modelled[label] += LATENCY_MS.get(service, 10) / 1000 * line.requests
            if service == "sqs":
                phase.fifo[operation] = str(body.get("QueueUrl", "")).endswith(".fifo")
        if error is not None and isinstance(error, Exception):
            raise error
        return http, parsed

    # --- DynamoDB capacity ------------------------------------------------------------------
    def _table(self, name: str) -> dict:
        if name not in self._tables:
            self.local.quiet = True
            try:
                self._tables[name] = self.ddb.describe_table(TableName=name)["Table"]
            finally:
                self.local.quiet = False
        return self._tables[name]

    def _key(self, table: str, item: dict) -> dict:
        return {k["AttributeName"]: item[k["AttributeName"]] for k in self._table(table)["KeySchema"]}

    def _item(self, table: str, key: dict) -> dict | None:
        self.local.quiet = True
        try:
            return self.ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        finally:
            self.local.quiet = False

    def _writes(self, operation: str, body: dict) -> list[tuple[str, dict, str, int]]:
        """(table, key, kind, factor) of every item a write request touches."""
        if operation == "PutItem":
            return [(body["TableName"], self._key(body["TableName"], body["Item"]), "write", 1)]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(body["TableName"], body["Key"], "write", 1)]
        if operation == "BatchWriteItem":
            out = []
            for table, requests in body["RequestItems"].items():
                for r in requests:
                    key = (
                        r["DeleteRequest"]["Key"]
                        if "DeleteRequest" in r
                        else self._key(table, r["PutRequest"]["Item"])
                    )
                    out.append((table, key, "write", 1))
            return out
        if operation == "TransactWriteItems":
            out = []
            for entry in body["TransactItems"]:
                ((kind, spec),) = entry.items()
                key = spec.get("Key") or self._key(spec["TableName"], spec["Item"])
                out.append((spec["TableName"], key, "check" if kind == "ConditionCheck" else "write", 2))
            return out
        return []

    def _capacity(self, line: Line, operation: str, body: dict, parsed: dict, writes: list, before: list,
                  *, failed: bool, by_table: tuple) -> None:  # fmt: skip
        detail, label, _ = by_table
        for (table, key, kind, factor), old in zip(writes, before, strict=True):
            new = old if failed or kind == "check" else self._item(table, key)
            units = factor * max(1, math.ceil(max(_size(old), _size(new)) / 1024))
            line.wru += units
            with self._lock:
                detail[(label, operation, _short(table))] += units
            if not failed and kind == "write":
                for gsi in self._gsis(table):
                    units = _index_writes(gsi, old, new)
                    line.gsi_wru += units
                    with self._lock:
                        detail[(label, operation, f"{_short(table)}/{gsi['IndexName']}")] += units
        consistent = 1.0 if body.get("ConsistentRead") else 0.5
        if operation == "GetItem":
            line.rru += consistent * max(1, math.ceil(_size(parsed.get("Item")) / 4096))
        elif operation in ("Query", "Scan"):
            total = sum(_size(i) for i in parsed.get("Items", []))
            line.rru += consistent * max(1, math.ceil(total / 4096))
        elif operation == "BatchGetItem":
            for table, items in parsed.get("Responses", {}).items():
                each = 1.0 if body["RequestItems"][table].get("ConsistentRead") else 0.5
                line.rru += sum(each * max(1, math.ceil(_size(i) / 4096)) for i in items)
        elif operation == "TransactGetItems":
            line.rru += sum(
                2 * max(1, math.ceil(_size(r.get("Item")) / 4096)) for r in parsed.get("Responses", [])
            )

    def _gsis(self, table: str) -> list[dict]:
        return self._table(table).get("GlobalSecondaryIndexes", [])


def largest_items(ddb: Any) -> dict[str, int]:
    """Each table's largest item at the end of the run (bytes, sized as the WRU are), by its
    logical name: whether a table's items stay within a write unit."""
    largest = {}
    for table in ddb.list_tables()["TableNames"]:
        sizes = [
            _size(i) for page in ddb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]
        ]
        largest[_short(table)] = max(sizes, default=0)
    return largest


def _short(table: str) -> str:
    """A table's logical name (the physical one carries the stack's prefix and suffix)."""
    return next((p for p in table.split("-") if p.endswith("Table")), table)


def _index_writes(gsi: dict, old: dict | None, new: dict | None) -> int:
    """Index write units for one item changing from `old` to `new` (None: absent)."""
    keys = [k["AttributeName"] for k in gsi["KeySchema"]]

    def projected(item: dict | None) -> dict | None:
        if item is None or any(k not in item for k in keys):
            return None
        p = gsi["Projection"]
        if p["ProjectionType"] == "ALL":
            return item
        names = set(keys) | set(p.get("NonKeyAttributes", []))
        return {k: v for k, v in item.items() if k in names or k in _TABLE_KEYS}

    a, b = projected(old), projected(new)
    units = lambda i: max(1, math.ceil(_size(i) / 1024))  # noqa: E731
    if a is None and b is None:
        return 0
    if a is None or b is None:
        return units(a if b is None else b)
    if all(a.get(k) == b.get(k) for k in keys):
        return 0 if a == b else units(a if _size(a) > _size(b) else b)
    return units(a) + units(b)  # the index key moved: a delete and a put


_TABLE_KEYS: set[str] = set()  # every table's key attributes (projected into every index)


def _body(request: dict) -> dict:
    body = request.get("body")
    if isinstance(body, dict):
        return body
    if isinstance(body, (bytes, str)) and body[:1] in ("{", b"{"):
        try:
            return json.loads(body)
        except ValueError:
            return {}
    return {}


class LogCounter:
    """sys.stdout for the run: what a handler prints is counted (CloudWatch Logs), not shown."""

    def __init__(self, meter: Meter, real: Any):
        self.meter, self.real = meter, real

    def write(self, text: str) -> int:
        label, phase = self.meter.label(), self.meter.phase
        if label is None:
            return self.real.write(text)
        if phase is not None:
            phase.log_bytes[label] += len(text.encode())
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


# --- the two directions -----------------------------------------------------------------------
def upload(stack: Any, rows: list[dict], files: dict[str, bytes], manifest: dict) -> None:
    import csv
    import io

    s3 = stack.aws.client("s3")
    bucket = stack.aws.physical("CampaignBucket")
    for name, content in files.items():
        s3.put_object(Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/attachments/{name}", Body=content)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/recipients.csv", Body=text.getvalue().encode("cp1252")
    )
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/manifest.json", Body=json.dumps(manifest).encode()
    )


def campaign(stack: Any, meter: Meter, n: int, alfa: Any, beta: Any) -> dict:
    from pecflow import bootstrap

    for i in range(n):
        beta.add_mailbox(f"cliente{i:04d}@pec.beta.test")
    rows = [{"PEC": f"cliente{i:04d}@pec.beta.test", "Ragione Sociale": f"Società {i} S.r.l.",
             "Importo": f"{1000 + i},50", "Scadenza": "31/01/2026", "Allegato": f"fattura-{i:04d}.pdf"}
            for i in range(n)]  # fmt: skip
    files = {"condizioni-generali.pdf": b"%PDF-1.4 condizioni generali\n" + b"x" * 20_000 + b"\n%%EOF\n",
             **{f"fattura-{i:04d}.pdf": f"%PDF-1.4 fattura {i}\n".encode() + b"y" * 8_000 + b"\n%%EOF\n"
                for i in range(n)}}  # fmt: skip
    manifest = {
        "mailbox": BOX,
        "subject": "Sollecito di pagamento – {{ ragione_sociale }}",
        "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo l'importo di {{ importo|importo }} "
        "scaduto il {{ scadenza|data }}.\n",
        "attachments": ["condizioni-generali.pdf"],
        "attachment_column": "allegato",
        "receipt_type": "breve",
    }
    upload(stack, rows, files, manifest)
    admin = bootstrap.campaign_admin(stack.deployment())
    stack.runner.run_until_idle(900)
    for _ in range(240):
        stack.runner.advance(STEP, timeout=600)
        stack.network.wait_idle(120)
        counters = admin.stats(CAMPAIGN)["counters"]
        if counters["total"] and counters["to_send"] == 0 and counters["waiting"] == 0:
            stack.runner.advance(POLL, timeout=600)  # the poll after the last receipts
            stack.network.wait_idle(120)
            return admin.stats(CAMPAIGN)["counters"]
    raise SystemExit(f"the campaign did not settle: {counters}")


def received(stack: Any, n: int, beta: Any) -> int:
    from local.pecbuild import builder
    from pecflow.adapters.dynamodb import MessageStore

    deployment = stack.deployment()
    table = MessageStore(deployment.messages_table, deployment.resource("dynamodb")).table

    def recorded() -> int:
        total, kw = 0, {"KeyConditionExpression": "mailbox = :m", "ExpressionAttributeValues": {":m": BOX},
                        "Select": "COUNT"}  # fmt: skip
        while True:
            page = table.query(**kw)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    start = recorded()
    senders = [beta.add_mailbox(f"mittente{i}@pec.beta.test") for i in range(10)]
    for i in range(n):
        account = senders[i % len(senders)]
        raw = builder.messaggio_originale(
            mittente=account.address, destinatari=[BOX], oggetto=f"Richiesta {i}",
            testo="Buongiorno,\nin allegato la documentazione richiesta.\n" * 20,
            allegati=[("documento.pdf", "application/pdf", b"%PDF-1.4\n" + b"z" * 30_000)],
            message_id=f"<richiesta-{i}@pec.beta.test>",
        )  # fmt: skip
        with smtplib.SMTP_SSL(beta.host, beta.port, context=beta.ssl_context(), timeout=20) as smtp:
            smtp.login(account.address, account.password)
            smtp.sendmail(account.address, [BOX], raw)
    stack.network.wait_idle(120)
    for _ in range(20):
        stack.runner.advance(POLL, timeout=600)
        stack.network.wait_idle(120)
        if recorded() - start >= n:
            return recorded() - start
    raise SystemExit(f"only {recorded() - start} of {n} messages were recorded")


# --- pricing ------------------------------------------------------------------------------------
def price(
    phase: Phase, invocations: list, functions: dict, prices: dict, traced: set[str], cpu: dict
) -> dict[str, float]:
    cost: dict[str, float] = defaultdict(float)
    for (_, service, operation), line in phase.lines.items():
        if service == "dynamodb":
            cost["DynamoDB"] += (line.wru + line.gsi_wru) * prices["dynamodb_on_demand_write_request_unit"]
            cost["DynamoDB"] += line.rru * prices["dynamodb_on_demand_read_request_unit"]
        elif service == "s3":
            if operation in PUT_CLASS:
                cost["S3 requests"] += line.requests * prices["s3_put_copy_post_list_request"]
            elif operation not in FREE:
                cost["S3 requests"] += line.requests * prices["s3_get_and_other_request"]
            cost["S3 storage (first month)"] += line.bytes_put / 1e9 * prices["s3_standard_gb_month"]
        elif service == "sqs":
            each = prices["sqs_fifo_request" if phase.fifo.get(operation) else "sqs_standard_request"]
            cost["SQS"] += line.requests * each
        elif service == "secretsmanager":
            cost["Secrets Manager"] += line.requests * prices["secrets_manager_api_call"]
        elif service == "monitoring":
            cost["CloudWatch metrics"] += line.requests * prices["cloudwatch_put_metric_data_request"]
        else:
            cost[service] += line.requests * prices["s3_get_and_other_request"]  # unknown: priced low
    for inv in invocations:
        memory = functions[inv.function].memory_size / 1024
        cost["Lambda requests"] += prices["lambda_request"]
        cost["X-Ray"] += prices["xray_trace_recorded"] if inv.function in traced else 0.0
        cost["CloudWatch Logs"] += prices["lambda_platform_log_bytes_per_invocation"] / 1e9 * prices["cloudwatch_logs_ingested_gb"]  # fmt: skip
        # Lambda gives a function a share of a vCPU in proportion to its memory (one whole at
        # 1,769 MB): one thread's CPU time measured here on a whole core takes longer there
        share = min(1.0, functions[inv.function].memory_size / FULL_VCPU_MB)
        cost["Lambda duration"] += memory * cpu[inv.request_id] / share * prices["lambda_arm64_gb_second"]
    for label, seconds in phase.modelled.items():  # the handler waiting on AWS: a real round trip each
        if label in functions:
            cost["Lambda duration"] += (
                functions[label].memory_size / 1024 * seconds * prices["lambda_arm64_gb_second"]
            )
    cost["CloudWatch Logs"] += sum(phase.log_bytes.values()) / 1e9 * prices["cloudwatch_logs_ingested_gb"]
    return cost


def traced_functions(functions: dict) -> set[str]:
    from local.template import load_yaml

    template = load_yaml((Path(REPO) / "template.yaml").read_text())
    default = ((template.get("Globals") or {}).get("Function") or {}).get("Tracing")
    traced = set()
    for fid in functions:
        mode = ((template["Resources"][fid].get("Properties") or {}).get("Tracing")) or default
        if isinstance(mode, dict):  # !If / !Ref: resolved as deployed with default parameters
            mode = _resolve_tracing(template, mode)
        if mode == "Active":
            traced.add(fid)
    return traced


def _resolve_tracing(template: dict, mode: dict) -> str | None:
    if "Ref" in mode:
        return (template.get("Parameters") or {}).get(mode["Ref"], {}).get("Default")
    if "Fn::If" in mode:
        condition, yes, no = mode["Fn::If"]
        spec = (template.get("Conditions") or {}).get(condition) or {}
        if "Fn::Equals" in spec:
            a, b = (_resolve_tracing(template, x) if isinstance(x, dict) else x for x in spec["Fn::Equals"])
            chosen = yes if a == b else no
            return _resolve_tracing(template, chosen) if isinstance(chosen, dict) else chosen
    return None


def report(
    name: str,
    phase: Phase,
    invocations: list,
    functions: dict,
    prices: dict,
    traced: set[str],
    n: int,
    cpu: dict,
    by_table: bool = False,
) -> float:
    print(f"\n== {name}: {n} messages ==")
    print(
        f"{'function':<32} {'service':<15} {'operation':<26} {'req/msg':>8} {'WRU/msg':>8} {'GSI/msg':>8} {'RRU/msg':>8}"
    )
    totals = Line()
    for (label, service, operation), line in sorted(phase.lines.items()):
        if not line.requests:
            continue
        print(f"{label:<32} {service:<15} {operation:<26} {line.requests / n:8.2f} {line.wru / n:8.2f} "
              f"{line.gsi_wru / n:8.2f} {line.rru / n:8.2f}")  # fmt: skip
        for attr in ("requests", "wru", "gsi_wru", "rru"):
            setattr(totals, attr, getattr(totals, attr) + getattr(line, attr))
    print(f"{'all':<32} {'':<15} {'':<26} {totals.requests / n:8.2f} {totals.wru / n:8.2f} "
          f"{totals.gsi_wru / n:8.2f} {totals.rru / n:8.2f}")  # fmt: skip
    if by_table:  # WRU per message by table and index
        for (label, operation, table), units in sorted(phase.by_table.items()):
            if units:
                print(f"  {label:<30} {operation:<20} {table:<34} {units / n:8.2f} WRU/msg")
    by_function = Counter(i.function for i in invocations)
    seconds = defaultdict(float)
    for i in invocations:
        seconds[i.function] += cpu.get(i.request_id, 0.0)
    for fid, count in sorted(by_function.items()):
        traced_note = ", traced" if fid in traced else ""
        print(f"  {fid}: {count / n:.2f} invocations/msg, {seconds[fid] / count * 1000:.0f} ms CPU each "
              f"+ {phase.modelled.get(fid, 0) / count * 1000:.0f} ms on AWS (moto took {phase.waited.get(fid, 0) / count * 1000:.0f}), "
              f"{functions[fid].memory_size} MB{traced_note}, {phase.log_bytes.get(fid, 0) / count:.0f} log bytes")  # fmt: skip
    cost = price(phase, invocations, functions, prices, traced, cpu)
    total = sum(cost.values()) / n * 10_000
    for what, usd in sorted(cost.items(), key=lambda kv: -kv[1]):
        print(f"  {what:<26} ${usd / n * 10_000:.4f} per 10,000")
    print(f"{name}: ${total:.4f} per 10,000")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="8 messages each way (under 30 s on an idle machine)"
    )
    parser.add_argument("-n", type=int, help="messages each way (default 200)")
    parser.add_argument(
        "--target-sent", type=float, default=1.0095, help="USD per 10,000 sent to halve (main's at 03df173)"
    )
    parser.add_argument(
        "--target-received",
        type=float,
        default=0.1986,
        help="USD per 10,000 received to halve (main's at 03df173)",
    )
    parser.add_argument(
        "--by-table",
        action="store_true",
        help="also WRU per message by table and index, and each table's largest item",
    )
    args = parser.parse_args()
    n = args.n or (8 if args.quick else 200)
    prices = json.loads((Path(REPO) / "bench" / "prices.json").read_text())

    from local.pec_provider import Quota
    from local.pecbuild import builder
    from local.stack import LocalStack

    started = time.perf_counter()
    with LocalStack.start(state_file=None) as stack:
        meter = Meter(stack.aws.client("dynamodb"))
        meter.install()
        real_stdout = sys.stdout
        sys.stdout = LogCounter(meter, real_stdout)
        for table in stack.aws.client("dynamodb").list_tables()["TableNames"]:
            _TABLE_KEYS.update(k["AttributeName"] for k in meter._table(table)["KeySchema"])
        runner = stack.runner
        functions = runner.functions
        traced = traced_functions(functions)
        net = stack.network
        alfa = net.add_provider(
            builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"), quota=Quota(max(1, n // 2), 1200)
        )
        beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
        stack.add_company_mailbox(alfa, BOX, quota_preset=f"custom:{max(1, n // 2)}/20m")

        phases = {}
        for name, run in (
            ("sent", lambda: campaign(stack, meter, n, alfa, beta)),
            ("received", lambda: received(stack, n, beta)),
        ):
            phase, first = Phase(), len(runner.invocations)
            meter.phase = phase
            outcome = run()
            meter.phase = None
            phases[name] = (phase, runner.invocations[first:], outcome)
        sys.stdout = real_stdout
        largest = largest_items(meter.ddb) if args.by_table else {}

    counters = phases["sent"][2]
    print(
        f"campaign: {counters}; received: {phases['received'][2]} recorded; {time.perf_counter() - started:.0f} s"
    )
    figures = {
        name: report(name, phase, invs, functions, prices, traced, n, meter.cpu, args.by_table)
        for name, (phase, invs, _) in phases.items()
    }
    if largest:
        print("largest item: " + ", ".join(f"{table} {size:,} B" for table, size in sorted(largest.items())))
    print(f"prices: {prices['region']}, {prices['date']} (bench/prices.json)")
    print(f"the meter's own CPU in the functions' threads, left out of theirs: {meter.metering:.1f} s")
    sent_target = f"target {args.target_sent / 2:.4f}" if args.target_sent else "target half of main's"
    received_target = (
        f"target {args.target_received / 2:.4f}" if args.target_received else "target half of main's"
    )
    print(f"cost received: {figures['received']:.4f} USD/10k received ({received_target})")
    print(f"cost: {figures['sent']:.4f} USD/10k sent ({sent_target})")


if __name__ == "__main__":
    main()
