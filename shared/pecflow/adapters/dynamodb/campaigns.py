"""CampaignsTable: the campaign item, its status, fan-out progress and counters (by message, and
by CSV row in `row_counters`: the outgoing store moves both with each job).

The counters live on an item of their own (key `<campaign_id>#counters`, written by
`start_counting`): a job's move adds to a few hundred bytes, not to the campaign item with its
manifest and file pins (kilobytes, in index ByMailbox), three times per message. A campaign
counted before that item existed keeps its counters on the campaign item (read and moved there)."""

from __future__ import annotations

from boto3.dynamodb.conditions import Attr, Key

from pecflow.adapters.dynamodb._common import (
    _clean,
    _conditional_write,
    _plain,
    _resource,
)
from pecflow.domain import clock
from pecflow.domain.reconcile import COUNTERS
from pecflow.domain.records import CampaignRecord

COUNTERS_ITEM = "#counters"  # the counters item's key: the campaign id and this
COUNTED = ("counters", "row_counters", "counting_started")  # what the counters item holds


def counters_key(campaign_id: str) -> dict[str, str]:
    return {"campaign_id": f"{campaign_id}{COUNTERS_ITEM}"}


# --- campaigns ---------------------------------------------------------------------------------------
class CampaignStore:
    """The campaign item: definition, status, fan-out progress, and its counters."""

    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)

    def get(self, campaign_id: str) -> CampaignRecord | None:
        item = self.table.get_item(Key={"campaign_id": campaign_id}, ConsistentRead=True).get("Item")
        return CampaignRecord.from_item(self._with_counters(_plain(item))) if item else None

    def _with_counters(self, item: dict) -> dict:
        """The campaign item with the figures of its counters item (when it has one)."""
        counted = self.table.get_item(Key=counters_key(item["campaign_id"]), ConsistentRead=True).get("Item")
        if not counted:
            return item
        counted = _plain(counted)
        return {**item, **{name: counted[name] for name in COUNTED if name in counted}}

    def of_mailbox(
        self, mailbox: str, *, limit: int = 50, start_key: dict | None = None
    ) -> tuple[list[CampaignRecord], dict | None]:
        """A page of a mailbox's campaigns, newest first (index ByMailbox), and where the next
        page starts (None: the last)."""
        kwargs: dict = {
            "IndexName": "ByMailbox",
            "KeyConditionExpression": Key("mailbox").eq(mailbox.lower()),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        page = self.table.query(**kwargs)
        items = [CampaignRecord.from_item(self._with_counters(_plain(i))) for i in page.get("Items", [])]
        return items, _plain(page["LastEvaluatedKey"]) if page.get("LastEvaluatedKey") else None

    def create(self, campaign_id: str, fields: dict) -> bool:
        """Create the campaign once (False when it exists: a repeated S3 event or a resume)."""
        now = clock.iso()
        item = {
            **_clean({**fields, "campaign_id": campaign_id, "created_at": now, "updated_at": now}),
            "counters": dict.fromkeys(COUNTERS, 0),
            "row_counters": dict.fromkeys(COUNTERS, 0),
        }
        return _conditional_write(
            self.table.put_item, Item=item, ConditionExpression=Attr("campaign_id").not_exists()
        )

    def update(
        self, campaign_id: str, fields: dict, *, only_if_status: tuple[str, ...] | None = None
    ) -> bool:
        fields = {**_clean(fields), "updated_at": clock.iso()}
        names = {f"#k{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        kwargs = {}
        if only_if_status:
            names["#status"] = "status"
            values.update({f":s{i}": s for i, s in enumerate(only_if_status)})
            kwargs["ConditionExpression"] = (
                "#status IN (" + ", ".join(f":s{i}" for i in range(len(only_if_status))) + ")"
            )
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **kwargs,
        )

    def note_problem(self, campaign_id: str, text: str, *, keep: int = 20) -> bool:
        """Add a line to the campaign's `problems` (what `campaign stats` shows), up to `keep` lines."""
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET problems = list_append(if_not_exists(problems, :empty), :p), updated_at = :now",
            ConditionExpression="attribute_exists(campaign_id) AND (attribute_not_exists(problems) "
            "OR size(problems) < :keep)",
            ExpressionAttributeValues={":empty": [], ":p": [text[:1000]], ":now": clock.iso(), ":keep": keep},
        )

    def start_counting(self, campaign_id: str, total: int, rows: int | None = None) -> bool:
        """Set the counters for `total` jobs to send covering `rows` CSV rows (as many as the jobs
        when None), once (a resumed fan-out does not count twice). No job exists yet: the row
        counters are written whole (a campaign created before they were kept gets them here)."""
        row_counters = {**dict.fromkeys(COUNTERS, 0), "total": total if rows is None else rows}
        row_counters["to_send"] = row_counters["total"]
        counters = {**dict.fromkeys(COUNTERS, 0), "total": total, "to_send": total}
        # on the campaign item first, as a campaign of old counts (a missing campaign raises):
        # stopped before its counters item, the campaign is counted there, exactly
        if not _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET counters.#t = :t, counters.#s = :t, row_counters = :rows, counting_started = :yes",
            ConditionExpression=Attr("counting_started").not_exists(),
            ExpressionAttributeNames={"#t": "total", "#s": "to_send"},
            ExpressionAttributeValues={":t": total, ":rows": row_counters, ":yes": True},
        ):
            return False
        self.table.update_item(  # UpdateItem: what every function counting may do
            Key=counters_key(campaign_id),
            UpdateExpression="SET counters = :c, row_counters = :rows, counting_started = :yes",
            ExpressionAttributeValues={":c": counters, ":rows": row_counters, ":yes": True},
        )
        return True

    def add_jobs(self, campaign_id: str, count: int, rows: int | None = None) -> None:
        """More jobs to send (a resend of the failed ones, or fewer: a fan-out stopped early),
        covering `rows` CSV rows (as many as the jobs when None). A campaign created before the
        row counters were kept refuses them: its message counters alone are moved."""
        names = {"#t": "total", "#s": "to_send"}
        both = "ADD counters.#t :n, counters.#s :n, row_counters.#t :r, row_counters.#s :r"
        # its counters item (which has both maps), or a campaign's of old: its item
        for key in (counters_key(campaign_id), {"campaign_id": campaign_id}):
            if _conditional_write(
                self.table.update_item,
                Key=key,
                UpdateExpression=both,
                ConditionExpression="attribute_exists(row_counters)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":n": count, ":r": count if rows is None else rows},
            ):
                return
        self.table.update_item(  # kept no row counters (a missing campaign raises)
            Key={"campaign_id": campaign_id},
            UpdateExpression="ADD counters.#t :n, counters.#s :n",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":n": count},
        )

    def checkpoint(
        self, campaign_id: str, next_row: int, queued: int, expected_next_row: int, rows: int | None = None
    ) -> bool:
        """Fan-out progress: rows before `next_row` are queued, `queued` jobs covering `rows` CSV
        rows (as many as the jobs when None). Conditional on the last checkpoint."""
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET fanout_next_row = :n, fanout_queued = :q, fanout_queued_rows = :r, "
            "updated_at = :now",
            ConditionExpression=Attr("fanout_next_row").not_exists()
            | Attr("fanout_next_row").eq(expected_next_row),
            ExpressionAttributeValues={
                ":n": next_row, ":q": queued, ":r": queued if rows is None else rows, ":now": clock.iso(),
            },
        )  # fmt: skip

    def counters(self, campaign_id: str) -> dict[str, int]:
        campaign = self.get(campaign_id)
        counters = campaign.counters if campaign else {}
        return {name: int(counters.get(name, 0)) for name in COUNTERS}
