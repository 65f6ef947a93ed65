"""OutgoingTable: outgoing messages and one job per recipient, moved by conditional writes
(the job state machine of pecflow.domain.reconcile), with the campaign counters kept in step."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from pecflow.adapters.dynamodb._common import (
    MOVE_ATTEMPTS,
    _clean,
    _conditional_write,
    _plain,
    _resource,
    _try_write,
    cancellation_reasons,
    whole_items,
)
from pecflow.adapters.dynamodb.campaigns import counters_key
from pecflow.domain import clock
from pecflow.domain.reconcile import Job, Move, State, counter_deltas, weighted
from pecflow.domain.records import (
    KEPT_EMPTY,
    MESSAGE_ROW,
    JobRecord,
    NewJob,
    job_items,
    left_behind,
    move_stamps,
    receipt_entry,
    receipts_written,
    registered_items,
    rows_covered,
)

# --- outgoing messages and their recipients' jobs ------------------------------------------------------


def _job(item: dict) -> Job:
    item = _plain(item)
    return Job(
        item["recipient"],
        State(item["state"]),
        bool(item.get("certified", True)),
        item.get("campaign_id"),
        rows_covered(item.get("rows")),
    )


def _receipt_sets(receipts: Mapping[str, Mapping], recipient: str, now: str) -> tuple[str, dict, dict] | None:
    """The SET clauses keeping receipts (id -> receipt) on a job's row, each only where absent:
    the clauses, their names, their values (None: no receipt)."""
    if not receipts:
        return None
    clauses, names, values = [], {}, {}
    for i, (receipt_id, receipt) in enumerate(receipts.items()):
        clauses.append(f"receipts.#r{i} = if_not_exists(receipts.#r{i}, :info{i})")
        names[f"#r{i}"] = receipt_id
        values[f":info{i}"] = _clean(receipt_entry(receipt, recipient, now))
    return ", ".join(clauses), names, values


def _holds(only_if: dict | None, item: dict) -> bool:
    """Do the `only_if` conditions of a move hold on the item as read?"""
    item = _plain(item)
    return all(
        name not in item if value is None else name in item and item[name] == _plain(value)
        for name, value in (only_if or {}).items()
    )


class OutgoingStore:
    def __init__(self, table_name: str, dynamodb=None, *, campaigns_table: str | None = None):
        resource = _resource(dynamodb)
        self.table = resource.Table(table_name)
        # the resource's client serialises plain Python values itself (as the Table API does)
        self.client = resource.meta.client
        self.table_name = table_name
        self.campaigns_table = campaigns_table
        # campaigns counted before their counters had an item of their own: their moves count on
        # the campaign item; those among them whose item has no row_counters (created before
        # they were kept) count messages only (each learnt from one refused move, then known in
        # this process)
        self.on_item: set[str] = set()
        self.unrowed: set[str] = set()

    def register(
        self,
        message_id: str,
        *,
        mailbox: str,
        recipients: list[str],
        subject: str | None = None,
        state: State = State.SENT,
        campaign_id: str | None = None,
        extra: dict | None = None,
    ) -> bool:
        """Record a message we send (False when it is already known). Recipients start in `state`."""
        # the shapes: pecflow/domain/records.py
        head, rows = registered_items(
            message_id, mailbox, recipients, subject, state, campaign_id, extra, now=clock.iso()
        )
        if not _conditional_write(
            self.table.put_item, Item=_clean(head), ConditionExpression=Attr("message_id").not_exists()
        ):
            return False
        with self.table.batch_writer() as batch:
            for row in rows:
                batch.put_item(Item=_clean(row, keep=KEPT_EMPTY))
        return True

    def add_jobs(self, jobs: list[dict], *, created: list[str] | None = None) -> int:
        """Create campaign jobs, pending, each only where it does not exist: a job already there
        (a retried or duplicated fan-out, a repeated resend) is never rewritten, so a job that
        moved on keeps its state, claim and receipts. `jobs`: dicts with message_id, recipient,
        mailbox, campaign_id, row, attempt, values. Returns how many were created; their
        Message-IDs are added to `created` when given."""
        now = clock.iso()
        items = []
        for job in jobs:
            head, row = job_items(NewJob.from_dict(job), now)  # the shape: pecflow/domain/records.py
            items.append((_clean(head), _clean(row, keep=KEPT_EMPTY)))
        if not items:
            return 0
        absent = "attribute_not_exists(message_id)"
        # job by job, its head then its row, each only where absent: a put is a write unit, where
        # a transaction of the two took four; a fan-out that stopped between them puts the rest
        # when it runs again (the job is queued only after), and a job is created by its row
        written = 0
        for head, row in items:
            _conditional_write(self.table.put_item, Item=head, ConditionExpression=absent)
            if _conditional_write(self.table.put_item, Item=row, ConditionExpression=absent):
                written += 1
                if created is not None:
                    created.append(head["message_id"])
        return written

    def job(self, message_id: str) -> JobRecord | None:
        """A campaign job: its one recipient row, with its message's head item."""
        rows = [
            _plain(i)
            for i in self.table.query(
                KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True
            ).get("Items", [])
        ]
        head = next((r for r in rows if r["recipient"] == MESSAGE_ROW), None)
        jobs = [r for r in rows if r["recipient"] != MESSAGE_ROW]
        if head is None or not jobs:
            return None
        return JobRecord.from_item({**jobs[0], "head": head})

    def reserve_slot(self, message_id: str, recipient: str, at: float) -> bool:
        """Note the quota slot a pending job holds, unless it holds one already (a duplicate of
        the job may have reserved first). False: not noted, give the slot back."""
        return _conditional_write(
            self.table.update_item,
            Key={"message_id": message_id, "recipient": recipient.lower()},
            UpdateExpression="SET slot_at = :at",
            ConditionExpression="#s = :pending AND (attribute_not_exists(slot_at) OR slot_at = :none)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":at": Decimal(repr(at)), ":pending": str(State.PENDING), ":none": 0},
        )

    def set_job_fields(self, message_id: str, recipient: str, fields: dict) -> None:
        fields = _clean(fields)
        if not fields:
            return
        self.table.update_item(
            Key={"message_id": message_id, "recipient": recipient.lower()},
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames={f"#k{i}": k for i, k in enumerate(fields)},
            ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(fields.values())},
        )

    def campaign_jobs(self, campaign_id: str) -> Iterator[JobRecord]:
        """Every job of a campaign, in row then attempt order (streamed, page by page)."""
        kwargs = {"IndexName": "ByCampaign", "KeyConditionExpression": Key("campaign_id").eq(campaign_id)}
        while True:
            page = self.table.query(**kwargs)
            yield from self._whole(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def campaign_job_page(
        self, campaign_id: str, *, after: Mapping[str, str] | None = None, limit: int = 100
    ) -> tuple[list[JobRecord], bool]:
        """One Query of index ByCampaign: up to `limit` jobs of a campaign in row then attempt
        order, from after the job at `after` (its job_key, message_id, recipient); and whether
        the campaign may go on past them. Every item read is returned (no filter)."""
        kwargs: dict[str, Any] = {
            "IndexName": "ByCampaign",
            "KeyConditionExpression": Key("campaign_id").eq(campaign_id),
            "Limit": limit,
        }
        if after:
            kwargs["ExclusiveStartKey"] = {
                "campaign_id": campaign_id,
                **{name: after[name] for name in ("job_key", "message_id", "recipient")},
            }
        page = self.table.query(**kwargs)
        return list(self._whole(page.get("Items", []))), "LastEvaluatedKey" in page

    def _whole(self, keys: list[dict]) -> Iterator[JobRecord]:
        """The jobs whose keys index ByCampaign gave, read whole, in the index's order. The index
        keeps only the keys (KEYS_ONLY): a job's every move and receipt is then no index write;
        reads, by 100 in a BatchGetItem, cost what the index's copies did."""
        for item in whole_items(self.client, self.table_name, keys, ("message_id", "recipient")):
            yield JobRecord.from_item(_plain(item))

    def message(self, message_id: str) -> dict | None:
        item = self.table.get_item(
            Key={"message_id": message_id, "recipient": MESSAGE_ROW}, ConsistentRead=True
        ).get("Item")
        return _plain(item) if item else None

    def message_and_jobs(self, message_id: str) -> tuple[dict | None, list[Job]]:
        """The message's head row and its recipients' jobs, in one query."""
        page = self.table.query(KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True)
        items = page.get("Items", [])
        head = next((_plain(i) for i in items if i["recipient"] == MESSAGE_ROW), None)
        return head, [_job(i) for i in items if i["recipient"] != MESSAGE_ROW]

    def jobs(self, message_id: str) -> list[Job]:
        page = self.table.query(KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True)
        return [_job(i) for i in page.get("Items", []) if i["recipient"] != MESSAGE_ROW]

    def by_identificativo(self, identificativo: str) -> str | None:
        page = self.table.query(
            IndexName="ByIdentificativo", KeyConditionExpression=Key("identificativo").eq(identificativo)
        )
        items = page.get("Items", [])
        return items[0]["message_id"] if items else None

    def set_identificativo(self, message_id: str, identificativo: str) -> None:
        self.table.update_item(
            Key={"message_id": message_id, "recipient": MESSAGE_ROW},
            UpdateExpression="SET identificativo = if_not_exists(identificativo, :i)",
            ExpressionAttributeValues={":i": identificativo},
        )

    def try_move(self, message_id: str, recipient: Job, move: Move, **kwargs) -> bool:
        """Like `apply`, but says whether this very write made the move (False: the job was not
        in a state, or with the fields, the move requires)."""
        outcome: list[bool] = []
        self.apply(message_id, recipient, move, _applied=outcome, **kwargs)
        return bool(outcome and outcome[0])

    def apply(
        self,
        message_id: str,
        recipient: Job,
        move: Move | None,
        *,
        receipt_id: str | None = None,
        receipt: dict | None = None,
        certified: bool | None = None,
        carried: dict[str, dict] | None = None,
        also_set: dict | None = None,
        only_if: dict | None = None,
        also_remove: tuple[str, ...] = (),
        _applied: list | None = None,
    ) -> State:
        """Apply `move` to one recipient's job with a conditional write (and its campaign's
        counters in the same transaction); record the receipt on the job whatever happens, and
        with it, by the same write, the `carried` ones (receipt id -> receipt: an accettazione
        its avvenuta consegna takes along).
        `also_set` is written (and `also_remove` removed) by the same write, which also removes
        what only sending needed when the move goes past it (`records.left_behind`); `only_if` adds
        conditions (attribute equal to a value, or absent for None). Returns the job's state afterwards.

        The move is tried only when it applies to `recipient.state`, the state the caller read.
        Its write requires the job to be exactly in that state (and certified flag), the one the
        counter deltas are computed from. When the job moved meanwhile, it is read again and, if
        the move (and `only_if`) still holds there, written again from that state: the counters
        stay exact (MOVE_ATTEMPTS in all; past that the refusal is raised). A write refused for
        contention is tried again, then raised (`_try_write`), never taken for a refusal."""
        key = {"message_id": message_id, "recipient": recipient.address}
        now = clock.iso()
        # the reconciled view keeps every receipt (duplicates and late ones too), keyed by its sha256
        receipts = receipts_written(receipt_id, receipt, carried)
        record = _receipt_sets(receipts, recipient.address, now)
        state = recipient.state
        if move is not None and move.applies_to(recipient.state):
            job = recipient
            refused: ClientError | None = None
            for _ in range(MOVE_ATTEMPTS):
                write, request = self._move_write(
                    key, job, move, now, record, certified, receipt, also_set, only_if, also_remove
                )
                refused = _try_write(write, **request)
                if refused is None:
                    if _applied is not None:
                        _applied.append(True)
                    return move.to
                reasons = cancellation_reasons(refused)
                if job.campaign_id and reasons[1:2] == ["ConditionalCheckFailed"]:
                    # its campaign has no counters item (counted before they had one): from now
                    # on its moves count on the campaign item; where that keeps no row counters
                    # (or there is no campaign item), messages only. The job as read held: write
                    # it so again
                    if job.campaign_id not in self.on_item:
                        self.on_item.add(job.campaign_id)
                    else:
                        self.unrowed.add(job.campaign_id)
                    if reasons[0] == "None":
                        continue
                # the job is not as the write required: as it is now, may the move still be made?
                item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
                if not item or "state" not in item:
                    break  # no such job
                job = _job(item)
                state = job.state
                if not move.applies_to(job.state) or not _holds(only_if, item):
                    break  # refused: not from this state, or not for this claim
            else:  # moved every time it was read: raised, the caller tries again later
                assert refused is not None
                raise refused
        if _applied is not None:
            _applied.append(False)
        if record:  # refused or not tried: the receipt alone
            self.table.update_item(
                Key=key,
                UpdateExpression="SET " + record[0],
                ExpressionAttributeNames=record[1],
                ExpressionAttributeValues=record[2],
            )
        return state

    def _move_write(
        self,
        key: dict,
        job: Job,
        move: Move,
        now: str,
        record: tuple | None,
        certified: bool | None,
        receipt: dict | None,
        also_set: dict | None,
        only_if: dict | None,
        also_remove: tuple[str, ...],
    ) -> tuple[Callable[..., Any], dict]:
        """The write moving `job`, as it was read, by `move`: conditional on that very state and
        certified flag, with the counter deltas from them in the same transaction; counted in
        rows too (weighted by `job.rows`, conditional on the job covering that many rows) where
        the campaign keeps row counters."""
        new_certified = job.certified if certified is None else certified
        stamps = move_stamps(move)
        sets = [
            "#s = :to",
            "updated_at = :now",
            *(f"#t{i} = if_not_exists(#t{i}, :now)" for i in range(len(stamps))),
            "#cert = :cert",
            "last_reason = :why",
        ]
        names = {"#s": "state", "#cert": "certified", **{f"#t{i}": stamp for i, stamp in enumerate(stamps)}}
        values = {
            ":to": str(move.to),
            ":now": now,
            ":cert": new_certified,
            ":why": move.reason,
            ":from": str(job.state),
            ":was": job.certified,
        }
        # exactly what the deltas are computed from (a job without the flag is read as certified)
        was = "#cert = :was" if not job.certified else "(attribute_not_exists(#cert) OR #cert = :was)"
        conditions = ["#s = :from", was]
        if record:
            sets.append(record[0])
            names.update(record[1])
            values.update(record[2])
        extra = dict(also_set or {})
        if receipt and move.to in (State.DELIVERY_FAILED, State.NOT_ACCEPTED):
            # a failure receipt's own words become the job's error text
            extra["error"] = (receipt.get("error_detail") or receipt.get("error") or move.reason)[:1000]
        for i, (name, value) in enumerate(_clean(extra).items()):
            sets.append(f"#x{i} = :x{i}")
            names[f"#x{i}"], values[f":x{i}"] = name, value
        for i, (name, value) in enumerate((only_if or {}).items()):
            names[f"#c{i}"] = name
            if value is None:
                conditions.append(f"attribute_not_exists(#c{i})")
            else:
                conditions.append(f"#c{i} = :c{i}")
                values[f":c{i}"] = value
        expression = "SET " + ", ".join(sets)
        removed = [*also_remove, *left_behind(move.to, kept={*extra, *also_remove})]  # past sending
        if removed:
            names.update({f"#d{i}": name for i, name in enumerate(removed)})
            expression += " REMOVE " + ", ".join(f"#d{i}" for i in range(len(removed)))
        campaign_id = job.campaign_id if self.campaigns_table else None
        deltas = (
            counter_deltas(job.state, move.to, certified=new_certified, old_certified=job.certified)
            if campaign_id
            else {}
        )
        rows = None if not campaign_id or not deltas or campaign_id in self.unrowed else job.rows
        if rows is not None:  # the weight is the job's as stored, or the move is refused and read again
            names["#rows"], values[":rows"] = "rows", rows
            weight = "size(#rows) = :rows"
            conditions.append(f"(attribute_not_exists(#rows) OR {weight})" if rows == 1 else weight)
        update = {
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if not campaign_id or not deltas:  # nothing else to keep in step: a conditional write
            return self.table.update_item, update
        counters = self._counter_update(campaign_id, deltas, rows)
        items = [{"Update": {"TableName": self.table_name, **update}}, counters]
        return self.client.transact_write_items, {"TransactItems": items}

    def count_in_campaign(self, campaign_id: str, name: str, delta: int) -> None:
        """Add `delta` to a figure of the campaign item kept beside its counters (e.g. dead_lettered)."""
        if self.campaigns_table:
            self.client.update_item(
                TableName=self.campaigns_table,
                Key={"campaign_id": campaign_id},
                UpdateExpression="ADD #n :d",
                ExpressionAttributeNames={"#n": name},
                ExpressionAttributeValues={":d": delta},
            )

    def _counter_update(self, campaign_id: str, deltas: dict[str, int], rows: int | None) -> dict:
        """The counters' half of a move: ADD the deltas to the campaign's counters and, with
        `rows`, the same weighted by the rows to its row_counters, on its counters item (required
        to exist: a campaign counted before it had one refuses, and its moves are written again
        on the campaign item; there, row_counters are required: one created before them
        refuses, and its moves are written again without)."""
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values = {f":d{i}": delta for i, delta in enumerate(deltas.values())}
        adds = [f"counters.#c{i} :d{i}" for i in range(len(deltas))]
        own_item = campaign_id not in self.on_item
        update: dict[str, Any] = {
            "TableName": self.campaigns_table,
            "Key": counters_key(campaign_id) if own_item else {"campaign_id": campaign_id},
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if own_item:  # never an item made by an ADD: the counters item exists, with both maps
            update["ConditionExpression"] = "attribute_exists(row_counters)"
        if rows is not None:
            values.update({f":r{i}": delta for i, delta in enumerate(weighted(deltas, rows).values())})
            adds += [f"row_counters.#c{i} :r{i}" for i in range(len(deltas))]
            update["ConditionExpression"] = "attribute_exists(row_counters)"
        return {"Update": {**update, "UpdateExpression": "ADD " + ", ".join(adds)}}

    def view(self, message_id: str) -> dict | None:
        """The reconciled view: the message, each recipient's state, and all their receipts."""
        page = self.table.query(KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True)
        items = [_plain(i) for i in page.get("Items", [])]
        head = next((i for i in items if i["recipient"] == MESSAGE_ROW), None)
        if head is None:
            return None
        return {**head, "jobs": [i for i in items if i["recipient"] != MESSAGE_ROW]}
