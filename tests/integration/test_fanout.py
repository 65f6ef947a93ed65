"""The campaign fan-out against moto (issue 10, items 4 and 6): idempotent under any retry, and
reading exactly the files validated, whatever is uploaded meanwhile."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest

from pecflow.adapters.campaign_files import CampaignPackage
from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
from pecflow.domain.reconcile import CLAIM, SMTP_ACCEPTED, CampaignStatus, Job, State
from pecflow.domain.records import JobRecord
from pecflow.services.admin import CampaignAdmin
from pecflow.services.fanout import fan_out
from tests import fakes

MANIFEST = {
    "mailbox": "ufficio@pec.azienda.test",
    "subject": "Avviso – {{ nome }}",
    "body_text": "Gentile {{ nome }}.\n",
    "receipt_type": "breve",
}


def csv_bytes(addresses: list[str]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(["pec", "nome"])
    writer.writerows([a, f"Ditta {i}"] for i, a in enumerate(addresses))
    return text.getvalue().encode()


class Campaign:
    """A campaign uploaded to the bucket and what a fan-out needs around it."""

    def __init__(self, aws, campaign_id: str, addresses: list[str], *, bucket: str | None = None):
        self.aws, self.id = aws, campaign_id
        self.s3 = aws.client("s3")
        self.bucket = bucket or aws.physical("CampaignBucket")
        ddb = aws.resource("dynamodb")
        self.campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
        self.outgoing = OutgoingStore(
            aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
        )
        self.queued: list[str] = []
        self.lock = threading.Lock()
        self.put("recipients.csv", csv_bytes(addresses))
        self.manifest_version = self.put("manifest.json", json.dumps(MANIFEST).encode())

    def put(self, name: str, body: bytes) -> str | None:
        return self.s3.put_object(Bucket=self.bucket, Key=f"campaigns/{self.id}/{name}", Body=body).get(
            "VersionId"
        )

    def send_batch(self, entries: list[dict]) -> dict:
        with self.lock:
            self.queued += [json.loads(e["MessageBody"])["message_id"] for e in entries]
        return {"Successful": [{"Id": e["Id"]} for e in entries]}

    def fan_out(self, *, own_stores: bool = False, **kwargs):
        """One fan-out; `own_stores`: with its own DynamoDB resource, as another Lambda has (boto3
        resources are not shared between threads)."""
        kwargs.setdefault("manifest_version", self.manifest_version)
        campaigns, outgoing = self.campaigns, self.outgoing
        if own_stores:
            ddb = self.aws.resource("dynamodb")
            campaigns = CampaignStore(self.aws.physical("CampaignsTable"), ddb)
            outgoing = OutgoingStore(
                self.aws.physical("OutgoingTable"), ddb, campaigns_table=self.aws.physical("CampaignsTable")
            )
        return fan_out(
            self.id,
            package=CampaignPackage(self.s3, self.bucket, self.id),
            campaigns=campaigns,
            outgoing=outgoing,
            send_batch=self.send_batch,
            **kwargs,
        )

    def jobs(self) -> dict[str, JobRecord]:
        return {j.recipient: j for j in self.outgoing.campaign_jobs(self.id)}


ADDRESSES = [f"cliente{i:02d}@pec.beta.test" for i in range(25)]


def test_a_retried_fan_out_never_rewrites_a_job_that_moved_on(aws, monkeypatch):
    """The fan-out crashes after its first batch, before the checkpoint; meanwhile a sender sends a
    job of that batch; the retry must leave it sent (it used to go back to pending and be sent again)."""
    campaign = Campaign(aws, "ritentata", ADDRESSES)
    checkpoint = CampaignStore.checkpoint

    def crash_once(self, *args, **kwargs):
        monkeypatch.setattr(CampaignStore, "checkpoint", checkpoint)
        raise RuntimeError("fan-out killed before its checkpoint")

    monkeypatch.setattr(CampaignStore, "checkpoint", crash_once)
    with pytest.raises(RuntimeError):
        campaign.fan_out()
    sent = campaign.jobs()[ADDRESSES[3]]
    job = Job(sent.recipient, State.PENDING, True, campaign.id)
    assert campaign.outgoing.try_move(
        sent.message_id, job, CLAIM, also_set={"claimed_at": "2026-03-02T09:00:00Z"}
    )
    campaign.outgoing.apply(
        sent.message_id,
        Job(job.address, State.SENDING, True, campaign.id),
        SMTP_ACCEPTED,
        also_set={"smtp_answer": "250 ok"},
    )
    campaign.outgoing.set_identificativo(sent.message_id, "opec-1@pec.azienda.test")

    result = campaign.fan_out()  # the retry (or a duplicate S3 event)
    assert result.status == CampaignStatus.SENDING and result.queued == 25
    again = campaign.jobs()[ADDRESSES[3]]
    assert again.state == "sent" and {State.SENDING, State.SENT} <= set(again.reached_at)
    assert again.smtp_answer == "250 ok", "not rewritten"
    assert campaign.outgoing.message(sent.message_id)["identificativo"] == "opec-1@pec.azienda.test"
    assert len(campaign.jobs()) == 25
    counters = campaign.campaigns.counters(campaign.id)
    assert (counters["total"], counters["to_send"], counters["sent"]) == (25, 24, 1)


def test_concurrent_duplicate_events_create_each_job_once(aws):
    campaign = Campaign(aws, "doppia", ADDRESSES)
    errors, results = [], []

    def run():
        try:
            results.append(campaign.fan_out(own_stores=True))
        except Exception:  # noqa: BLE001 - collected for the assertion
            import traceback

            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(campaign.jobs()) == 25
    counters = campaign.campaigns.counters(campaign.id)
    assert (counters["total"], counters["to_send"]) == (25, 25), "counted once"
    assert set(campaign.queued) == {j.message_id for j in campaign.jobs().values()}
    assert campaign.campaigns.get(campaign.id).status == CampaignStatus.SENDING


def test_a_csv_replaced_while_queuing_changes_nothing(aws):
    campaign = Campaign(aws, "sostituita", ADDRESSES)
    continued = []
    first = campaign.fan_out(time_left=lambda: 0.0, margin=30, continue_later=continued.append)
    assert first.more and first.queued == 10 and continued == [campaign.id]
    # the user uploads another CSV (and manifest) under the same campaign while it is queuing
    campaign.put("recipients.csv", csv_bytes([f"mai-validato{i}@pec.gamma.test" for i in range(40)]))
    new_manifest = campaign.put("manifest.json", json.dumps({**MANIFEST, "subject": "Altro"}).encode())
    campaign.fan_out(manifest_version=new_manifest)  # the S3 event of the new manifest
    result = campaign.fan_out(manifest_version=None)  # the continuation
    assert sorted(campaign.jobs()) == sorted(ADDRESSES), "exactly the validated rows"
    assert sorted(campaign.queued) == sorted(j.message_id for j in campaign.jobs().values()), "each once"
    assert result.status == CampaignStatus.SENDING
    item = campaign.campaigns.get(campaign.id)
    assert item.manifest["subject"] == MANIFEST["subject"]
    assert any("manifest.json uploaded again" in p and "new campaign id" in p for p in item.problems)


def test_a_new_manifest_under_a_running_campaign_starts_nothing_and_is_noted(aws):
    campaign = Campaign(aws, "avviata", ADDRESSES[:5])
    campaign.fan_out()
    queued = list(campaign.queued)
    version = campaign.put("manifest.json", json.dumps({**MANIFEST, "subject": "Di nuovo"}).encode())
    result = campaign.fan_out(manifest_version=version)
    assert result.problems == ["already fanned out"] and campaign.queued == queued
    assert "uploaded again" in campaign.campaigns.get(campaign.id).problems[0]
    campaign.fan_out()  # a duplicate event of the first manifest: nothing to note
    assert len(campaign.campaigns.get(campaign.id).problems) == 1


def test_a_pinned_csv_that_is_gone_stops_the_queuing_with_the_reason(aws):
    campaign = Campaign(aws, "cancellata", ADDRESSES)
    campaign.fan_out(time_left=lambda: 0.0, margin=30)
    pin = campaign.campaigns.get(campaign.id).files["recipients.csv"]
    campaign.s3.delete_object(
        Bucket=campaign.bucket, Key=f"campaigns/{campaign.id}/recipients.csv", VersionId=pin["version_id"]
    )
    result = campaign.fan_out(manifest_version=None)
    assert result.status == CampaignStatus.SENDING and result.queued == 10
    item = campaign.campaigns.get(campaign.id)
    assert (
        "queuing stopped after 10 recipient(s): recipients.csv is no longer the file validated"
        in item.fanout_error
    )
    counters = campaign.campaigns.counters(campaign.id)
    assert (counters["total"], counters["to_send"]) == (10, 10), "only what was queued is counted"
    assert len(campaign.jobs()) == 10


def test_without_versions_the_etag_pins_the_files(aws):
    s3 = aws.client("s3")
    s3.create_bucket(
        Bucket="pecflow-senza-versioni", CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    campaign = Campaign(aws, "etag", ADDRESSES, bucket="pecflow-senza-versioni")
    assert campaign.manifest_version is None
    campaign.fan_out(time_left=lambda: 0.0, margin=30)
    assert campaign.campaigns.get(campaign.id).files["recipients.csv"]["etag"]
    campaign.put("recipients.csv", csv_bytes(ADDRESSES[::-1]))
    result = campaign.fan_out(manifest_version=None)
    assert "replaced or deleted" in result.problems[0] and len(campaign.jobs()) == 10


def test_a_manifest_without_its_csv_is_invalid_with_the_reason(aws):
    s3 = aws.client("s3")
    bucket = aws.physical("CampaignBucket")
    version = s3.put_object(
        Bucket=bucket, Key="campaigns/senza-csv/manifest.json", Body=json.dumps(MANIFEST).encode()
    )["VersionId"]
    ddb = aws.resource("dynamodb")
    campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
    result = fan_out(
        "senza-csv",
        package=CampaignPackage(s3, bucket, "senza-csv"),
        campaigns=campaigns,
        outgoing=OutgoingStore(aws.physical("OutgoingTable"), ddb),
        send_batch=lambda e: {},
        manifest_version=version,
    )
    assert result.status == CampaignStatus.INVALID
    assert "recipients.csv is missing" in campaigns.get("senza-csv").invalid_reason


def test_the_start_of_a_campaign_and_its_purpose_are_in_the_audit_log(aws):
    """Through the Fanout service as the function builds it: the start is appended to the sending
    mailbox's audit log once, with the uploader, the purpose and the recipients; a retried event
    appends nothing more."""
    from pecflow.adapters.dynamodb.audit import AuditStore
    from pecflow.adapters.queues import SqsQueue
    from pecflow.services.audit import AuditLog
    from pecflow.services.fanout import Fanout

    campaign = Campaign(aws, "con-finalita", ADDRESSES[:5])
    manifest = {**MANIFEST, "purpose": "avviso di scadenza del contratto"}
    version = campaign.put("manifest.json", json.dumps(manifest).encode())
    audit = AuditLog(AuditStore(aws.physical("AuditTable"), aws.resource("dynamodb")))
    fanout = Fanout(
        files_of=lambda cid: CampaignPackage(campaign.s3, campaign.bucket, cid),
        campaigns=campaign.campaigns,
        outgoing=campaign.outgoing,
        send_queue=SqsQueue(aws.url("SendQueue"), aws.client("sqs")),
        audit=audit,
    )
    for _ in range(2):
        fanout.run(campaign.id, manifest_version=version, uploaded_by="s3:AWS:AIDAEXAMPLE")
    (event,) = list(audit.store.events(MANIFEST["mailbox"]))
    assert (event.actor, event.action, event.message) == ("s3:AWS:AIDAEXAMPLE", "campaign", "con-finalita")
    assert event.details == {
        "change": "started",
        "purpose": "avviso di scadenza del contratto",
        "recipients": "5",
    }


def test_a_grouped_campaign_queues_one_job_per_customer_with_its_rows(aws):
    """group_by (issue 18): 7 invoice rows of 3 customers, unsorted → 3 jobs in the order of each
    customer's first row, each with its rows' values in `righe`; the counters count messages."""
    campaign = Campaign(aws, "raggruppata", [])
    invoices = [
        ("rossi", 1),
        ("bianchi", 2),
        ("rossi", 3),
        ("verdi", 4),
        ("bianchi", 5),
        ("rossi", 6),
        ("ROSSI", 7),
    ]
    text = "pec;nome;numero;importo\r\n" + "".join(
        f"{who}@pec.beta.test;Ditta {who.lower()};{n};{n}.000,50\r\n" for who, n in invoices
    )
    campaign.put("recipients.csv", text.encode())
    manifest = {
        **MANIFEST,
        "group_by": "pec",
        "cc": "archivio@pec.azienda.test",
        "body_text": "{% for r in righe %}{{ r.numero }} {{ r.importo|importo }}\n{% endfor %}"
        "{{ righe|sum(attribute='importo')|importo }}\n",
    }
    campaign.manifest_version = campaign.put("manifest.json", json.dumps(manifest).encode())
    result = campaign.fan_out()
    assert (result.status, result.queued, result.rows) == (CampaignStatus.SENDING, 3, 7)
    jobs = campaign.jobs()
    assert {address: (job.row, job.rows) for address, job in jobs.items()} == {
        "rossi@pec.beta.test": (2, (2, 4, 7, 8)),
        "bianchi@pec.beta.test": (3, (3, 6)),
        "verdi@pec.beta.test": (5, (5,)),
    }
    rossi = jobs["rossi@pec.beta.test"]
    assert [r["numero"] for r in rossi.values["righe"]] == ["1", "3", "6", "7"]
    assert rossi.message_id == "<pecflow.raggruppata.2.1@pec.azienda.test>"
    assert campaign.outgoing.message(rossi.message_id)["cc"] == ["archivio@pec.azienda.test"]
    assert campaign.campaigns.counters(campaign.id)["total"] == 3
    assert campaign.campaigns.get(campaign.id).validation["messages"] == 3


def _grouped(aws, campaign_id: str) -> tuple[Campaign, int]:
    """25 customers of 1 to 3 invoice rows each, their rows interleaved: 49 rows, 25 PEC."""
    campaign = Campaign(aws, campaign_id, [])
    rows = [(f"cliente{c:02d}@pec.beta.test", n) for n in range(3) for c in range(25) if n <= c % 3]
    text = "pec;nome;numero\r\n" + "".join(f"{who};Ditta {who[:9]};{n}\r\n" for who, n in rows)
    campaign.put("recipients.csv", text.encode())
    campaign.manifest_version = campaign.put(
        "manifest.json", json.dumps({**MANIFEST, "group_by": "pec"}).encode()
    )
    return campaign, len(rows)


def test_a_resumed_grouped_fan_out_counts_the_campaigns_rows(aws):
    """Stopped by its deadline after each batch of 10 PEC: every continuation's result counts the
    rows queued since the start, and the row counters cover every row once."""
    campaign, rows = _grouped(aws, "raggruppata-ripresa")
    first = campaign.fan_out(time_left=lambda: 0.0, margin=30)
    assert (
        first.more
        and first.queued == 10
        and first.rows == sum(j.rows_covered for j in campaign.jobs().values())
    )
    second = campaign.fan_out(manifest_version=None, time_left=lambda: 0.0, margin=30)
    last = campaign.fan_out(manifest_version=None)
    assert (second.queued, last.status, last.queued, last.rows) == (20, CampaignStatus.SENDING, 25, rows)
    item = campaign.campaigns.get(campaign.id)
    assert (item.fanout_queued, item.fanout_queued_rows) == (25, rows)
    assert (item.counters["total"], item.counters["to_send"]) == (25, 25)
    assert (item.row_counters["total"], item.row_counters["to_send"]) == (rows, rows)


def test_a_grouped_fan_out_stopped_early_counts_only_the_rows_queued(aws):
    campaign, rows = _grouped(aws, "raggruppata-fermata")
    campaign.fan_out(time_left=lambda: 0.0, margin=30)
    pin = campaign.campaigns.get(campaign.id).files["recipients.csv"]
    campaign.s3.delete_object(
        Bucket=campaign.bucket, Key=f"campaigns/{campaign.id}/recipients.csv", VersionId=pin["version_id"]
    )
    assert campaign.fan_out(manifest_version=None).queued == 10
    item = campaign.campaigns.get(campaign.id)
    covered = sum(j.rows_covered for j in campaign.jobs().values())
    assert len(campaign.jobs()) == 10 and covered < rows
    assert (item.counters["total"], item.row_counters["total"], item.row_counters["to_send"]) == (
        10,
        covered,
        covered,
    )


def test_a_campaign_paused_while_its_rows_are_queued_queues_them_all_and_resume_sends_them(aws):
    """Paused between two runs of its fan-out (a large campaign continues in a new invocation):
    the next run still queues the rest, the status stays as the person set it, and resume puts
    every job on the send queue; none is left behind."""
    campaign, rows = _grouped(aws, "sospesa-in-preparazione")
    first = campaign.fan_out(time_left=lambda: 0.0, margin=30)
    assert first.more and first.queued == 10
    send_queue = fakes.FakeQueue()
    admin = CampaignAdmin(campaigns=campaign.campaigns, outgoing=campaign.outgoing, send_queue=send_queue)
    assert admin.set_status(campaign.id, "pause") == CampaignStatus.PAUSED

    second = campaign.fan_out(manifest_version=None, time_left=lambda: 0.0, margin=30)
    assert second.queued == 20, second.problems
    last = campaign.fan_out(manifest_version=None)
    assert (last.status, last.queued, last.rows) == (CampaignStatus.PAUSED, 25, rows)
    item = campaign.campaigns.get(campaign.id)
    assert item.status == CampaignStatus.PAUSED and item.fanout_finished_at
    assert len(campaign.jobs()) == 25

    assert admin.set_status(campaign.id, "resume") == CampaignStatus.SENDING
    requeued = {json.loads(entry["MessageBody"])["message_id"] for entry in send_queue.sent}
    assert requeued == {job.message_id for job in campaign.jobs().values()}
    assert campaign.fan_out(manifest_version=None).problems == ["already fanned out"]  # finished: once


def test_a_campaign_resumed_before_its_fan_out_continues_queues_the_rest(aws):
    campaign, rows = _grouped(aws, "ripresa-in-preparazione")
    campaign.fan_out(time_left=lambda: 0.0, margin=30)
    admin = CampaignAdmin(
        campaigns=campaign.campaigns, outgoing=campaign.outgoing, send_queue=fakes.FakeQueue()
    )
    admin.set_status(campaign.id, "pause")
    admin.set_status(campaign.id, "resume")
    last = campaign.fan_out(manifest_version=None)
    assert (last.status, last.queued, last.rows) == (CampaignStatus.SENDING, 25, rows)
    assert len(campaign.jobs()) == 25 and campaign.campaigns.get(campaign.id).fanout_finished_at
