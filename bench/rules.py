"""Cost of a mailbox's rules: at ingestion, and in a dry run over recorded messages.

DynamoDB and S3 in moto, in-process, with template.yaml's tables; the provider is the in-memory
IMAP fake (the rules cost nothing on IMAP). 1. The same mixed corpus (PEC, receipts, SdI files,
ordinary mail) is ingested into two mailboxes, one without rules and one with accepted formats
and three rules (tag SdI invoices, assign a supplier's mail, tag a subject pattern): reported are
the DynamoDB requests and the wall time per message of each, and what the rules add.
2. A dry run (`pecflow rules test`'s path) over the recorded messages of the period: time and
items DynamoDB read per message; and again with an auto-reply and a PDF rule added (the reply's
guards and its template rendered per message, as the dry run shows them).
Target: rules add at most 10% to the poll's DynamoDB requests per message.
Measured (--quick, 2026-11-27): 5.92 without rules and 6.36 with (+7.4 %) before the rows of a
batch's new messages rode in its settle's BatchWriteItem; since, 5.00 and 5.55 (+11.0 %, over the
target): both cheaper, but a message a rule matched still has its row written alone, before the
rule acts on it, so the rules' share of a cheaper poll grew (+0.44 requests a message to +0.55).
Then the first tag started from the row just written instead of reading it back: 5.00 and 5.44
(+8.8 %).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from _env import REPO  # first: the paths and fake AWS credentials

os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from local.aws import LocalAws  # noqa: E402
from local.pecbuild import corpus as pecmix  # noqa: E402
from pecflow import bootstrap  # noqa: E402
from pecflow.adapters.dynamodb.people import PeopleStore  # noqa: E402
from pecflow.adapters.rules import RecordedMessages  # noqa: E402
from pecflow.config import Config  # noqa: E402
from pecflow.domain.access import Person, Role  # noqa: E402
from pecflow.domain.rules import load  # noqa: E402
from pecflow.services.rules import dry_run  # noqa: E402
from tests import fakes  # noqa: E402

RULES = {
    "version": 1,
    "accepted_formats": {
        "allow": ["pdf", "xml", "p7m", "text", "html", "eml", "office", "image", "zip", "other"]
    },
    "rules": [
        {"name": "Fatture", "when": {"has_sdi": True}, "then": {"tag": ["fattura"]}},
        {"name": "Fornitore", "when": {"sender_domain": ["pec.fornitore.test"]}, "then": {"assign": "anna"}},
        {"name": "Solleciti", "when": {"subject": "*sollecito*"}, "then": {"tag": ["sollecito"]}},
    ],
}


REPLY_RULE = {
    "name": "Conferma",
    "then": {
        "reply": {
            "template": "Gentile {{ mittente }},\nabbiamo ricevuto «{{ oggetto }}».\n",
            "once_per": "7d",
        },
        "pdf": {"prefix": "stampe"},
    },
}


class Requests:
    """DynamoDB requests made through one client (a boto3 event hook)."""

    def __init__(self, client) -> None:
        self.count = 0
        client.meta.events.register("before-call.dynamodb.*", self._seen)

    def _seen(self, **_) -> None:
        self.count += 1


def ingest(config: Config, address: str, raws: list[bytes], requests: Requests) -> tuple[float, int]:
    server = fakes.FakeImapServer()
    account = server.add_account(address, "segreta")
    for raw in raws:
        account.append(raw, when=datetime.now(UTC))
    mailbox = fakes.config(address)
    ingestor = bootstrap.ingestor(config, check_signature=None)
    ingestor.mailboxes.put(mailbox)
    before = requests.count
    started = time.perf_counter()
    session = server.open(mailbox, "segreta")
    result = ingestor.poll(mailbox, session)
    elapsed = time.perf_counter() - started
    assert result.recorded == len(set(raws)), result
    assert not result.rules_failed, result.rules_failed
    return elapsed, requests.count - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 messages ingested, 500 tried (under 30 s)")
    parser.add_argument("--messages", type=int, help="messages ingested per mailbox (default 1,000)")
    parser.add_argument("--recorded", type=int, help="recorded messages of the dry run (default 10,000)")
    args = parser.parse_args()
    count = args.messages or (100 if args.quick else 1_000)
    recorded = args.recorded or (500 if args.quick else 10_000)
    raws = [c.raw for c in pecmix.corpus(count, seed=7, sdi=True)]

    with mock_aws():
        aws = LocalAws.in_process(REPO / "template.yaml", stack_name="bench")
        config = Config(
            stack_name="bench",
            mailboxes_table=aws.physical("MailboxesTable"),
            messages_table=aws.physical("MessagesTable"),
            outgoing_table=aws.physical("OutgoingTable"),
            campaigns_table=aws.physical("CampaignsTable"),
            inbox_table=aws.physical("InboxTable"),
            audit_table=aws.physical("AuditTable"),
            people_table=aws.physical("PeopleTable"),
            archive_bucket=aws.physical("ArchiveBucket"),
        )
        ddb = aws.resource("dynamodb")
        requests = Requests(ddb.meta.client)
        # every adapter of the bench shares this resource (moto's clients are per process)
        config = _sharing(config, ddb)
        with_rules = "regole@pec.azienda.test"
        people = PeopleStore(config.people_table, ddb)
        people.add(Person("anna", "anna@azienda.test"), created_at="2026-03-01T09:00:00+00:00")
        people.set_role("anna", with_rules, Role.OPERATOR)

        plain_s, plain_req = ingest(config, "semplice@pec.azienda.test", raws, requests)
        fakes_mailbox = fakes.config(with_rules)
        bootstrap.mailbox_store(config).put(fakes_mailbox)
        bootstrap.rules_desk(config).set(None, with_rules, RULES, actor="bench")
        rules_s, rules_req = ingest(config, with_rules, raws, requests)
        n = len(set(raws))
        print(
            f"ingestion without rules: {plain_req / n:.2f} DynamoDB requests, {plain_s / n * 1000:.2f} ms per message"
        )
        print(
            f"ingestion with rules:    {rules_req / n:.2f} DynamoDB requests, {rules_s / n * 1000:.2f} ms per message"
        )
        print(f"rules add {(rules_s / plain_s - 1) * 100:+.1f}% time per message (moto in-process)")

        # the dry run over a period's records
        table = ddb.Table(config.messages_table)
        template = next(i for i in table.scan()["Items"] if i["message"].startswith("sha256:"))  # a record
        start = datetime.now(UTC) - timedelta(days=10)
        with table.batch_writer() as batch:
            for i in range(recorded):
                when = (
                    (start + timedelta(seconds=60 * i))
                    .isoformat(timespec="microseconds")
                    .replace("+00:00", "Z")
                )
                item = template | {
                    "mailbox": "prova@pec.azienda.test", "message": f"sha256:{i:064x}", "sha256": f"{i:064x}",
                    "received_at": when, "received_key": f"{when}#{i:016x}",
                    "subject": "Sollecito" if i % 10 == 0 else f"Pratica {i}",
                }  # fmt: skip
                item.pop("original_subject", None)  # the subject decides
                batch.put_item(Item=item)
        document = load(RULES)
        reader = RecordedMessages(config.messages_table, ddb)
        started = time.perf_counter()
        matched = sum(
            1 for t in dry_run(document, reader.since("prova@pec.azienda.test", "2000")) if t.decisions
        )
        elapsed = time.perf_counter() - started
        print(
            f"dry run: {recorded} recorded messages in {elapsed:.2f} s ({elapsed / recorded * 1e6:.0f} µs and "
            f"{reader.reads / recorded:.2f} items read per message), {matched} would be acted on"
        )
        answering = load(RULES | {"rules": [*RULES["rules"], REPLY_RULE]})
        reader = RecordedMessages(config.messages_table, ddb)
        started = time.perf_counter()
        would = sum(len(t.would) for t in dry_run(answering, reader.since("prova@pec.azienda.test", "2000")))
        elapsed = time.perf_counter() - started
        print(
            f"dry run with an auto-reply and a PDF rule: {elapsed:.2f} s ({elapsed / recorded * 1e6:.0f} µs "
            f"per message), {would} replies and PDFs described"
        )
    extra = (rules_req / plain_req - 1) * 100
    print(f"rules: {extra:+.1f} % DynamoDB requests per message (target <= 10 %)")


def _sharing(config: Config, ddb) -> Config:
    """The configuration, its DynamoDB resource the one given (so the hook counts every request)."""

    class Shared(Config):
        __slots__ = ()

        def resource(self, service: str):
            return ddb if service == "dynamodb" else super().resource(service)

    return Shared(**{name: getattr(config, name) for name in Config.__dataclass_fields__})


if __name__ == "__main__":
    main()
