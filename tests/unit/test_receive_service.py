"""The receive service (Ingestor, and handle_poll around it) against the in-memory fakes: what
tests/integration/test_ingest.py and test_quarantine.py prove on Dovecot and moto, in memory.

Every test runs with a mailbox store that checks, at each cursor it is asked to save, that every
message at or below it on the provider is recorded: the cursor never passes a message whose
record is not durable.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from botocore.exceptions import ClientError

from local.pecbuild import builder
from local.pecbuild import corpus as pecmix
from pecflow.domain.mailbox import Saturation, SaturationPolicy
from pecflow.pec import kinds, message
from pecflow.pec.daticert import Destinatario
from pecflow.services.polling import PollRequest, handle_poll
from pecflow.services.receive import MAX_ATTEMPTS, ArchiveFailed, Ingestor
from tests import fakes

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
BOX = "ufficio@pec.azienda.test"
PASSWORD = "segreta"
CAMPAIGN = "pratiche"


class Crash(Exception):
    """A fault of ours in the middle of a poll (the poll stops; the Lambda returns an error)."""


class PollerDied(BaseException):
    """What a Lambda time-out or running out of memory is to the code running: it just stops."""


class CheckedMailboxes(fakes.FakeMailboxStore):
    """A mailbox store that refuses to save a cursor past a message whose record is missing."""

    def __init__(self, server: fakes.FakeImapServer, messages: fakes.FakeMessageStore):
        super().__init__()
        self.server, self.messages = server, messages
        self._sha: dict[tuple[int, int], str] = {}

    def save_cursor(self, address, cursor):
        account = self.server.accounts.get(address.lower())
        folder = account.folders.get(cursor.folder) if account else None
        if folder is not None and folder.uidvalidity == cursor.uidvalidity:
            missing = []
            for uid in (u for u in sorted(folder.messages) if u <= cursor.last_uid):
                key = (folder.uidvalidity, uid)
                sha = self._sha.get(key) or hashlib.sha256(folder.messages[uid].raw).hexdigest()
                self._sha[key] = sha
                unfetched = f"unfetched-{folder.uidvalidity}-{uid}"  # recorded without its bytes
                if self.messages.get(address, sha) is None and self.messages.get(address, unfetched) is None:
                    missing.append(uid)
            assert not missing, f"cursor saved at UID {cursor.last_uid} before the records of UIDs {missing}"
        super().save_cursor(address, cursor)


class World:
    """A provider mailbox, the stores, and the ingestor wired with the fakes."""

    def __init__(self) -> None:
        self.server = fakes.FakeImapServer()
        self.account = self.server.add_account(BOX, PASSWORD)
        self.archive = fakes.FakeArchive()
        self.messages = fakes.FakeMessageStore()
        self.mailboxes = CheckedMailboxes(self.server, self.messages)
        self.campaigns = fakes.FakeCampaignStore()
        self.campaigns.create(CAMPAIGN, {"status": "sending", "mailbox": BOX})
        self.outgoing = fakes.FakeOutgoingStore(self.campaigns)
        self.inbox = fakes.FakeInboxStore(fakes.FakeAuditStore())
        self.ingestor = Ingestor(
            archive=self.archive,
            messages=self.messages,
            mailboxes=self.mailboxes,
            outgoing=self.outgoing,
            inbox=self.inbox,
        )
        self.config = fakes.config(BOX)
        self.mailboxes.put(self.config)
        self.requeued: list[PollRequest] = []

    def fill(self, raws, *, folder: str = "INBOX", when: datetime | None = None) -> None:
        for raw in raws:
            self.account.append(raw, folder=folder, when=when)

    def poll(self, config=None, **kw):
        session = self.server.open(config or self.config, PASSWORD)
        try:
            return self.ingestor.poll(config or self.config, session, **kw)
        finally:
            session.close()

    def handle(self, *, password: str = PASSWORD, **kw):
        return handle_poll(
            PollRequest(BOX, "2026-03-02T09:00Z"),
            mailboxes=self.mailboxes,
            ingestor=self.ingestor,
            password_of=lambda config, refresh=False: password,
            open_session=self.server.open,
            requeue=self.requeued.append,
            **kw,
        )

    def crash_at(self, step: str, uids, error: type[BaseException] = Crash):
        """Crash at `step` of each of `uids`, once each."""
        pending = set(uids)

        def checkpoint(at: str, **where) -> None:
            if at == step and where.get("uid") in pending:
                pending.discard(where["uid"])
                raise error(f"{step} at UID {where['uid']}")

        self.ingestor.checkpoint = checkpoint
        return pending

    def state(self) -> dict:
        """Everything a poll leaves behind, to compare two runs."""
        return {
            "records": sorted(self.messages.records(BOX), key=lambda r: r["message"]),
            "archive": {k: o.body for k, o in self.archive.objects.items()},
            "jobs": {
                message_id: self.outgoing.view(message_id)["jobs"]
                for message_id, recipient in self.outgoing.rows
                if recipient == fakes.MESSAGE_ROW
            },
            "counters": self.campaigns.counters(CAMPAIGN),
            "on_provider": self.account.raws(),
            "inbox": self.inbox.rows(),
            "words": self.inbox.word_index(),  # the postings, however the polls batched them
            "uid_map": self.mapped(),  # the entries, however the polls batched them
        }

    def mapped(self, folder: str = "INBOX") -> dict[int, str]:
        """The UID map of a folder's current UIDVALIDITY: UID -> SHA-256, for every UID ever there."""
        uids = list(range(1, self.account.folder(folder).uidnext))
        at = self.messages.at_location(BOX, folder, self.account.folder(folder).uidvalidity, uids)
        return {uid: record.sha256 for uid, record in sorted(at.items())}

    def shas(self, folder: str = "INBOX") -> dict[int, str]:
        """What the provider holds: UID -> SHA-256."""
        messages = self.account.folder(folder).messages
        return {uid: hashlib.sha256(messages[uid].raw).hexdigest() for uid in sorted(messages)}


def timeless(value):
    """`value` with the times pecflow wrote (clock.iso) blanked: runs at other moments compare."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items()}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    if isinstance(value, str) and ISO.fullmatch(value):
        return "<time>"
    return value


ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def world(monkeypatch) -> World:
    fakes.FakeClock(WHEN + timedelta(days=1)).install(monkeypatch)
    return World()


@cache
def mixed(n: int, seed: int, sdi: bool = False) -> tuple[bytes, ...]:
    return tuple(c.raw for c in pecmix.corpus(n, seed=seed, sdi=sdi))


@cache
def our_raws(n: int) -> tuple[tuple[str, str, tuple[bytes, ...]], ...]:
    """n messages we sent, each with its accettazione and its consegna (every fourth: a failure)."""
    out = []
    for i in range(n):
        to = f"cliente{i}@pec.cliente.test"
        msgid = f"<m{i}@pec.azienda.test>"
        original = builder.messaggio_originale(
            mittente=BOX, destinatari=[to], oggetto=f"Pratica {i}", testo="x", message_id=msgid, data=WHEN
        )
        kw = dict(
            gestore=builder.SIMULATO,
            identificativo=f"opec{i}.1@pec.simulato.test",
            destinatari=[Destinatario(to)],
        )
        accettazione = builder.ricevuta(kinds.ACCETTAZIONE, original, data=WHEN + timedelta(seconds=1), **kw)
        failed = i % 4 == 3
        outcome = builder.ricevuta(
            kinds.ERRORE_CONSEGNA if failed else kinds.AVVENUTA_CONSEGNA,
            original,
            consegna=to,
            data=WHEN + timedelta(seconds=2),
            **({"errore": "no-dest"} if failed else {}),
            **kw,
        )
        out.append((msgid, to, (accettazione, outcome)))
    return tuple(out)


def our_traffic(world: World, n: int) -> list[bytes]:
    """n messages we sent, registered as outgoing jobs of the campaign, and their receipts."""
    raws = []
    for msgid, to, receipts in our_raws(n):
        world.outgoing.register(msgid, mailbox=BOX, recipients=[to], campaign_id=CAMPAIGN)
        raws += receipts
    return raws


def job_states(world: World, n: int) -> Counter:
    return Counter(str(world.outgoing.jobs(f"<m{i}@pec.azienda.test>")[0].state) for i in range(n))


# --- every message once ------------------------------------------------------------------------------
def test_every_message_is_archived_and_recorded_once_and_receipts_reconciled(world):
    corpus = mixed(30, 3)
    ours = our_traffic(world, 8)
    world.fill(corpus[:15] + tuple(ours[:8]))
    first = world.poll()
    world.fill(corpus[15:] + tuple(ours[8:]))
    second = world.poll()
    third = world.poll()
    distinct = set(corpus) | set(ours)
    assert first.fetched + second.fetched == len(corpus) + len(ours) and third.fetched == 0
    assert first.recorded + second.recorded == len(distinct) == world.messages.count(BOX)
    assert sorted(world.archive.created) == sorted(set(world.archive.created)), "each put once"
    assert len(world.archive.objects) == len(distinct)
    for record in world.messages.records(BOX):
        assert world.archive.get(record["s3_key"]) in distinct, "the record points at its original"
        assert hashlib.sha256(world.archive.get(record["s3_key"])).hexdigest() == record["sha256"]
    assert first.receipts_matched + second.receipts_matched == 16
    assert job_states(world, 8) == {"delivered": 6, "delivery-failed": 2}
    counters = world.campaigns.counters(CAMPAIGN)
    assert (counters["delivered"], counters["delivery_failures"], counters["accepted"]) == (6, 2, 6)
    unmatched = world.messages.query(BOX, index="Unmatched")
    assert len(unmatched) == sum(1 for raw in set(corpus) if b"X-Ricevuta:" in raw) > 0
    assert world.account.raws() == list(corpus[:15] + tuple(ours[:8]) + corpus[15:] + tuple(ours[8:])), (
        "nothing leaves the provider under the default policy"
    )
    # what people see: one row per message, receipts apart, our campaign's receipts under it
    rows = {r["sha256"]: r for (_, sk), r in world.inbox.items.items() if sk == "row"}
    assert set(rows) == {r["sha256"] for r in world.messages.records(BOX)}
    for record in world.messages.records(BOX):
        row = rows[record["sha256"]]
        receipt = record["kind"] in kinds.RICEVUTE
        assert row["list_pk"] == f"{BOX}#{'receipts' if receipt else 'messages#da-gestire'}"
        assert row["kind"] == record["kind"]
    # a message recorded by this poll gets its row without a read first; seen again, it is checked
    assert {new for _, new in world.inbox.adds} == {True} and len(world.inbox.adds) == len(distinct)
    ours_rows = [rows[hashlib.sha256(raw).hexdigest()] for raw in ours]
    assert all(r["campaign_pk"] == f"{BOX}#{CAMPAIGN}" for r in ours_rows)


def test_fetches_go_in_chunks_and_nothing_new_costs_the_same_whatever_the_mailbox_holds(world):
    world.ingestor.chunk_messages = 10
    world.fill(mixed(45, 4))
    first = world.poll()
    assert [len(b) for b in world.server.sessions[-1].fetched] == [10, 10, 10, 10, 5]
    assert first.fetched == 45
    costs = []
    for n in (0, 45):
        world.fill(mixed(n + 1, 5)[:n])
        world.poll()  # whatever arrived
        idle = world.poll()
        assert idle.fetched == 0
        costs.append(idle.imap_commands)
    assert costs[0] == costs[1] == 3, "LOGIN, STATUS, GETQUOTAROOT: nothing grows with the mailbox"


# --- crashes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [Crash, PollerDied], ids=["exception", "poller-died"])
@pytest.mark.parametrize("step", ["after_archive", "after_reconcile", "after_record", "before_cursor"])
def test_a_crash_at_each_step_of_each_message_loses_and_duplicates_nothing(monkeypatch, step, error):
    """The clean run is the reference; the crashing run dies at `step` once on every message in
    turn, polling again after each crash. Both must end exactly alike."""
    fakes.FakeClock(WHEN + timedelta(days=1)).install(monkeypatch)
    raws = [*our_traffic(World(), 6), *double_traffic(World()), *mixed(8, 9, True)]

    clean = World()
    our_traffic(clean, 6)
    double_traffic(clean)
    clean.fill(raws)
    clean.poll()

    crashing = World()
    our_traffic(crashing, 6)
    double_traffic(crashing)
    crashing.fill(raws)
    uids = crashing.account.uids()
    left = crashing.crash_at(step, uids, error)
    crashes = 0
    while left:
        fakes.CLOCK.advance(60)  # the queue tries again a minute later
        with pytest.raises(error):
            crashing.poll()
        crashes += 1
        assert crashes <= len(uids), "each poll crashes on a message not crashed on before"
    last = crashing.poll()
    assert crashes == len(uids) and last.quarantined == []
    assert timeless(crashing.state()) == timeless(clean.state())
    assert crashing.messages.count(BOX) == len(set(raws))
    assert sorted(crashing.archive.created) == sorted(clean.archive.created), "each original put once"
    assert job_states(crashing, 6) == {"delivered": 5, "delivery-failed": 1}
    for i in range(6):
        receipts = crashing.outgoing.view(f"<m{i}@pec.azienda.test>")["jobs"][0]["receipts"]
        assert len(receipts) == 2, "each receipt recorded once on its job"
    assert [(j["state"], len(j["receipts"])) for j in crashing.outgoing.view(DOUBLE)["jobs"]] == [
        ("delivered", 2)
    ] * 2


@pytest.mark.parametrize("step", ["after_archive", "after_reconcile", "after_record", "before_cursor"])
def test_the_cursor_moves_only_after_the_record(world, step):
    world.fill(mixed(8, 2))
    world.crash_at(step, [5])
    with pytest.raises(Crash):
        world.poll()
    cursor = world.mailboxes.get_cursor(BOX, "INBOX")
    assert cursor.last_uid == 4, "the crashed message is fetched again by the next poll"
    assert (cursor.attempt_uid, cursor.attempts) == (None, 0), "a failure of ours is no attempt"
    recorded_5 = world.messages.get(BOX, hashlib.sha256(world.account.folder().messages[5].raw).hexdigest())
    assert (recorded_5 is not None) == (step not in ("after_archive", "after_reconcile"))
    saved = [c.last_uid for a, c in world.mailboxes.cursor_writes]
    assert saved == sorted(saved) and 5 not in saved
    world.ingestor.checkpoint = lambda step, **where: None
    assert world.poll().fetched == 4
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 8


# --- receipts -------------------------------------------------------------------------------------------
def test_a_receipt_reconciles_its_job_once(world):
    [(msgid, to, (accettazione, consegna))] = our_raws(1)
    world.outgoing.register(msgid, mailbox=BOX, recipients=[to], campaign_id=CAMPAIGN)
    stranger = mixed(6, 1)  # receipts of messages we did not send, among others
    world.fill([consegna, *stranger])  # the consegna before the accettazione
    first = world.poll()
    assert world.outgoing.jobs(msgid)[0].state == "delivered"
    world.fill([accettazione, consegna])  # a late accettazione, and the consegna delivered again
    second = world.poll()
    assert (first.receipts_matched, second.receipts_matched) == (1, 2)
    assert second.recorded == 1 and second.already_recorded == 1
    job = world.outgoing.view(msgid)["jobs"][0]
    assert job["state"] == "delivered" and len(job["receipts"]) == 2
    assert world.outgoing.message(msgid)["identificativo"] == "opec0.1@pec.simulato.test"
    assert world.outgoing.by_identificativo("opec0.1@pec.simulato.test") == msgid
    record = world.messages.get(BOX, hashlib.sha256(consegna).hexdigest())
    assert (record.reconciled, record.outgoing_message_id) == ("matched", msgid)
    assert record.unmatched_mailbox is None
    assert record.uid == 9, "the copy seen again is where the record says it is"
    counters = world.campaigns.counters(CAMPAIGN)
    assert {k: v for k, v in counters.items() if v} == {
        "only_sent": -1,
        "waiting": -1,
        "accepted": 1,
        "delivered": 1,
    }, "moved once, by the first receipt that applied"
    unknown = [r for r in world.messages.query(BOX, index="Unmatched")]
    assert unknown and all(r.reconciled == "unmatched" and r.reconcile_problems for r in unknown)


def test_an_accettazione_leaves_its_move_to_the_consegna_in_the_same_batch(world):
    """One write a delivered (or failed) job instead of three: the accettazione writes nothing on
    the job, and its avvenuta consegna (or errore), fetched later in the same batch, keeps it there
    and moves the job past accepted in its one transaction; the end is the same as receipt by
    receipt (a batch of one), stamps and counters included."""
    ours = our_traffic(world, 4)  # the fourth: an errore di consegna, which takes it along too
    writes = world.outgoing.interfere([])
    world.fill(ours)
    world.poll()
    assert writes == ["transaction"] * 4, "3 consegne and an errore, each with its accettazione"
    one_by_one = World()
    one_by_one.ingestor.chunk_messages = 1
    our_traffic(one_by_one, 4)
    one_by_one.fill(ours)
    one_by_one.poll()
    assert timeless(world.state()) == timeless(one_by_one.state())
    # the accettazione's receipt rides on its consegna's transaction: no write of its own on the job
    assert Counter(world.outgoing.write_requests) == {"transaction": 4, "identificativo": 4}
    assert Counter(one_by_one.outgoing.write_requests) == {"transaction": 8, "identificativo": 4}
    for i in range(3):
        job = world.outgoing.view(f"<m{i}@pec.azienda.test>")["jobs"][0]
        assert job["state"] == "delivered" and len(job["receipts"]) == 2
        assert job["at_accepted"] and job["at_delivered"], "the export's accepted_at and delivered_at"
    failed = world.outgoing.view("<m3@pec.azienda.test>")["jobs"][0]
    assert failed["state"] == "delivery-failed" and len(failed["receipts"]) == 2 and failed["at_accepted"]
    counters = world.campaigns.counters(CAMPAIGN)
    assert (counters["accepted"], counters["delivered"], counters["delivery_failures"]) == (3, 3, 1)


TWO = ["uno@pec.cliente.test", "due@pec.cliente.test"]
DOUBLE = "<doppio@pec.azienda.test>"


@cache
def double_receipts() -> tuple[bytes, bytes]:
    """The accettazione of a message of ours to two recipients, and the first one's consegna."""
    original = builder.messaggio_originale(
        mittente=BOX, destinatari=TWO, oggetto="Doppio", testo="x", message_id=DOUBLE, data=WHEN
    )
    kw = dict(gestore=builder.SIMULATO, identificativo="opec9.1@pec.simulato.test", data=WHEN)
    accettazione = builder.ricevuta(
        kinds.ACCETTAZIONE, original, destinatari=[Destinatario(a) for a in TWO], **kw
    )
    consegna = builder.ricevuta(
        kinds.AVVENUTA_CONSEGNA, original, destinatari=[Destinatario(TWO[0])], consegna=TWO[0], **kw
    )
    return accettazione, consegna


@cache
def second_consegna() -> bytes:
    """The avvenuta consegna of the two-recipient message to its second recipient."""
    original = builder.messaggio_originale(
        mittente=BOX, destinatari=TWO, oggetto="Doppio", testo="x", message_id=DOUBLE, data=WHEN
    )
    return builder.ricevuta(
        kinds.AVVENUTA_CONSEGNA,
        original,
        gestore=builder.SIMULATO,
        identificativo="opec9.1@pec.simulato.test",
        data=WHEN + timedelta(seconds=5),
        destinatari=[Destinatario(TWO[1])],
        consegna=TWO[1],
    )


def double_traffic(world: World) -> list[bytes]:
    """The two-recipient message registered, and its accettazione and two consegne."""
    world.outgoing.register(DOUBLE, mailbox=BOX, recipients=TWO, campaign_id=CAMPAIGN)
    return [*double_receipts(), second_consegna()]


def counted_reads(world: World) -> list[str]:
    """The Message-IDs whose head and jobs the poll reads from now on, in order."""
    reads, read = [], world.outgoing.message_and_jobs

    def counted(message_id):
        reads.append(message_id)
        return read(message_id)

    world.outgoing.message_and_jobs = counted
    return reads


def test_one_accettazione_rides_on_the_two_consegne_of_its_two_recipients(world):
    """A message to two recipients, its accettazione and both consegne in one batch: each
    consegna's transaction carries the accettazione to its job, from the jobs as the accettazione
    read them; nothing is left to settle (not even a read) and the end is the same as receipt by
    receipt."""
    one_by_one = World()
    one_by_one.ingestor.chunk_messages = 1
    for each in (world, one_by_one):
        each.fill([*mixed(2, 8), *double_traffic(each)])
    reads = [counted_reads(world), counted_reads(one_by_one)]
    for each in (world, one_by_one):
        each.poll()
    assert reads[0].count(DOUBLE) == 1, "the accettazione's read serves its consegne; nothing to settle"
    assert reads[1].count(DOUBLE) == 3
    assert Counter(world.outgoing.write_requests) == {"transaction": 2, "identificativo": 1}
    assert Counter(one_by_one.outgoing.write_requests) == {"transaction": 4, "identificativo": 1}
    jobs = world.outgoing.view(DOUBLE)["jobs"]
    assert [(job["state"], len(job["receipts"])) for job in jobs] == [("delivered", 2)] * 2
    assert all(job["at_accepted"] for job in jobs)
    assert timeless(world.state()) == timeless(one_by_one.state()), "counters included"


def test_a_preavviso_or_a_virus_takes_the_accettazione_along_as_a_consegna_does(world):
    """Whatever receipt on the delivery comes first after the accettazione in the batch takes it
    along (a preavviso, then its consegna; a rilevazione virus): the end is receipt by receipt's."""
    raws, one_by_one = [], World()
    one_by_one.ingestor.chunk_messages = 1
    for i, kinds_after in enumerate([(kinds.PREAVVISO_ERRORE_CONSEGNA, kinds.AVVENUTA_CONSEGNA),
                                     (kinds.RILEVAZIONE_VIRUS,)]):  # fmt: skip
        to, msgid = f"altro{i}@pec.cliente.test", f"<a{i}@pec.azienda.test>"
        original = builder.messaggio_originale(
            mittente=BOX, destinatari=[to], oggetto="Altro", testo="x", message_id=msgid, data=WHEN
        )
        kw = dict(gestore=builder.SIMULATO, identificativo=f"opec-a{i}@pec.simulato.test", data=WHEN,
                  destinatari=[Destinatario(to)])  # fmt: skip
        raws.append(builder.ricevuta(kinds.ACCETTAZIONE, original, **kw))
        raws += [builder.ricevuta(kind, original, consegna=to, **kw) for kind in kinds_after]
        for each in (world, one_by_one):
            each.outgoing.register(msgid, mailbox=BOX, recipients=[to], campaign_id=CAMPAIGN)
    for each in (world, one_by_one):
        each.fill(raws)
        each.poll()
    assert Counter(world.outgoing.write_requests) == {"transaction": 3, "identificativo": 2}, "none refused"
    assert [job.state for job in (*world.outgoing.jobs("<a0@pec.azienda.test>"),
                                  *world.outgoing.jobs("<a1@pec.azienda.test>"))] == ["delivered", "delivery-failed"]  # fmt: skip
    assert timeless(world.state()) == timeless(one_by_one.state()), "stamps and counters included"


def test_an_accettazione_after_its_consegna_in_the_batch_is_written_by_itself(world):
    """Only a consegna later in the batch takes an accettazione along: one that came before it
    leaves nothing to carry, and the accettazione is reconciled as it arrives."""
    [(msgid, to, (accettazione, consegna))] = our_raws(1)
    world.outgoing.register(msgid, mailbox=BOX, recipients=[to], campaign_id=CAMPAIGN)
    world.fill([consegna, accettazione])
    world.poll()
    assert world.outgoing.write_requests == ["transaction", "identificativo", "receipt"]
    job = world.outgoing.view(msgid)["jobs"][0]
    assert job["state"] == "delivered" and len(job["receipts"]) == 2


def test_a_consegna_that_cannot_be_applied_leaves_its_accettazione_to_the_settling(world):
    """The consegna's reconciliation fails for a reason of its own (its record is quarantined):
    the accettazione it would have carried is written when the batch is settled, and moves the
    job to accepted as receipt by receipt."""
    [(msgid, to, (accettazione, consegna))] = our_raws(1)
    world.outgoing.register(msgid, mailbox=BOX, recipients=[to], campaign_id=CAMPAIGN)
    world.fill([accettazione, consegna])
    apply = world.outgoing.apply

    def refusing(message_id, recipient, move, **kw):
        if kw.get("carried"):
            raise ValueError("a consegna this store cannot take")
        return apply(message_id, recipient, move, **kw)

    world.outgoing.apply = refusing
    result = world.poll()
    assert [q.split(": ", 1)[0] for q in result.quarantined] == ["UID 2"]
    job = world.outgoing.view(msgid)["jobs"][0]
    assert job["state"] == "accepted" and list(job["receipts"]) == [hashlib.sha256(accettazione).hexdigest()]
    counters = world.campaigns.counters(CAMPAIGN)
    assert (counters["accepted"], counters["delivered"], counters["waiting"]) == (1, 0, 0)


def test_an_accettazione_moves_the_jobs_its_batch_consegna_did_not(world):
    """A message to two recipients with one consegna in the batch: the other recipient's job is
    moved to accepted when the batch is settled, before the cursor passes it."""
    one_by_one = World()
    one_by_one.ingestor.chunk_messages = 1
    for each in (world, one_by_one):
        each.outgoing.register(DOUBLE, mailbox=BOX, recipients=TWO, campaign_id=CAMPAIGN)
        each.fill(double_receipts())
        each.poll()
    states = {job.address: str(job.state) for job in world.outgoing.jobs(DOUBLE)}
    assert states == {TWO[0]: "delivered", TWO[1]: "accepted"}
    assert timeless(world.state()) == timeless(one_by_one.state()), "counters included"


def found_by_word(world, sha: str) -> bool:
    """Whether a word search of the message's first word lists it."""
    from pecflow.domain.inbox import Filters, listing_of, plan

    row = world.inbox.row(BOX, sha)
    word = next(w for w in row["words"] if len(w) >= 4)
    query = plan(BOX, Filters(text=word, receipts=listing_of(row) == "receipts"))
    shown, key = [], None
    while True:
        page = world.inbox.page(query, limit=50, start_key=key)
        shown += [r["sha256"] for r in page.rows]
        if (key := page.next_key) is None:
            return sha in shown


def test_a_batch_that_dies_after_its_records_writes_their_rows_and_postings_when_polled_again(world):
    """The poller dies after the last message's record, before the batch's settle (where the
    rows of the messages it recorded are written, with the postings): the records are there, no
    row, no word; the next poll (one message at a time) writes the rows of every message of the
    batch (recorded before: each row read first, then written if absent) and their postings."""
    raws = list(mixed(5, 3))
    world.fill(raws)
    shas = [hashlib.sha256(r).hexdigest() for r in raws]
    world.crash_at("before_cursor", [world.account.uids()[-1]], PollerDied)
    with pytest.raises(PollerDied):
        world.poll()
    assert all(world.messages.get(BOX, sha) for sha in shas)
    assert not any(world.inbox.row(BOX, sha) for sha in shas) and world.inbox.word_index() == {}
    world.poll()
    assert all(world.inbox.row(BOX, sha) and found_by_word(world, sha) for sha in shas)
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == len(raws)


@pytest.mark.parametrize("fails", ["postings", "uid map", "uid map, no inbox"])
def test_a_batch_whose_settling_writes_fail_takes_the_cursor_back_before_it(world, fails):
    """DynamoDB failing as the batch's postings or UID map are written: the cursor goes back
    before the batch (no attempt counted), and the next poll writes them."""
    raws = list(mixed(4, 4))
    world.fill(raws)
    if fails.endswith("no inbox"):  # nothing else of the batch left to settle
        world.ingestor.inbox = None
    store, name = (world.inbox, "index_words") if fails == "postings" else (world.messages, "map_uids")
    write = getattr(store, name)

    def failing(*args, **kwargs):
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "BatchWriteItem")

    setattr(store, name, failing)
    with pytest.raises(ClientError):
        world.poll()
    cursor = world.mailboxes.get_cursor(BOX, "INBOX")
    assert (cursor.last_uid, cursor.attempt_uid, cursor.attempts) == (0, None, 0)
    setattr(store, name, write)
    world.poll()
    assert world.mapped() == world.shas() and world.mailboxes.get_cursor(BOX, "INBOX").last_uid == len(raws)
    if world.ingestor.inbox is not None:
        shas = [hashlib.sha256(r).hexdigest() for r in raws]
        assert all(world.inbox.row(BOX, sha) and found_by_word(world, sha) for sha in shas)


def test_each_batch_writes_its_uid_map_before_the_cursor_passes_it(world):
    """Every message archived is in the map (new, recorded before, quarantined), one item per
    fetched batch; a message too large to fetch is not (it was never archived)."""
    world.ingestor.chunk_messages = 4
    world.ingestor.max_message_bytes = 50_000
    raws = list(mixed(9, 6))
    world.fill([*raws[:5], b"\x00 not a message", raws[0], bytes(60_000), *raws[5:]])
    world.poll()
    shas = world.shas()
    too_large = [uid for uid, m in world.account.folder().messages.items() if len(m.raw) == 60_000]
    assert world.mapped() == {uid: sha for uid, sha in shas.items() if uid not in too_large}
    assert len(world.messages.uid_map) == 3, "4 + 3 messages, the large one, then 5: 3 maps"


@pytest.mark.parametrize("error", [Crash, PollerDied], ids=["exception", "poller-died"])
def test_a_batch_that_dies_midway_is_in_the_uid_map_once_polled_again(world, error):
    world.fill(mixed(6, 5))
    world.crash_at("before_cursor", [4], error)
    with pytest.raises(error):
        world.poll()
    assert set(world.mapped()) == ({1, 2, 3} if error is Crash else set()), "settled before the cursor"
    world.poll()
    assert world.mapped() == world.shas()


def test_a_batch_mapped_then_read_again_one_at_a_time_leaves_the_provider_once(world):
    """The poller dies after the batch's map, before its cursor: the batch is read again one
    message at a time, each mapped again in its own item (the first one's replacing the batch's:
    the cursor passed none of the others). The guard finds each UID once, and what it expunges
    leaves every item naming it."""
    world.fill(mixed(5, 9), when=WHEN - timedelta(days=200))
    save_cursor, died = world.mailboxes.save_cursor, []

    def dies_once(address, cursor):
        if cursor.last_uid == 5 and not died:
            died.append(cursor)
            raise PollerDied()
        save_cursor(address, cursor)

    world.mailboxes.save_cursor = dies_once
    with pytest.raises(PollerDied):
        world.poll()
    assert world.mapped() == world.shas() and len(world.messages.uid_map) == 1
    world.mailboxes.save_cursor = save_cursor
    assert world.poll().fetched == 5 and len(world.messages.uid_map) == 5
    assert world.mapped() == world.shas()
    policy = SaturationPolicy(Saturation.AFTER_DAYS, days=30, expunge=True)
    result = world.poll(fakes.config(BOX, saturation=policy))
    assert result.expunged == 5 and world.account.uids() == []
    assert world.mapped() == {} and world.messages.uid_map == {}


def test_settling_a_batch_that_fails_takes_the_cursor_back_before_the_accettazione(world):
    """DynamoDB failing when the batch's accettazioni are settled: the cursor goes back before
    the first of them, with no attempt counted, and the next poll moves its jobs."""
    world.outgoing.register(DOUBLE, mailbox=BOX, recipients=TWO, campaign_id=CAMPAIGN)
    world.fill([*mixed(2, 8), *double_receipts()])
    apply, calls = world.outgoing.apply, []

    def failing(message_id, recipient, move, **kw):  # the second recipient's job: only settling writes it
        if recipient.address == TWO[1]:
            calls.append(message_id)
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "TransactWriteItems")
        return apply(message_id, recipient, move, **kw)

    world.outgoing.apply = failing
    with pytest.raises(ClientError):
        world.poll()
    assert calls == [DOUBLE]
    cursor = world.mailboxes.get_cursor(BOX, "INBOX")
    assert (cursor.last_uid, cursor.attempt_uid, cursor.attempts) == (2, None, 0)
    assert {str(job.state) for job in world.outgoing.jobs(DOUBLE)} == {"delivered", "sent"}
    world.outgoing.apply = apply
    world.poll()
    jobs = {job["recipient"]: job for job in world.outgoing.view(DOUBLE)["jobs"]}
    assert {address: job["state"] for address, job in jobs.items()} == {
        TWO[0]: "delivered",
        TWO[1]: "accepted",
    }
    assert (len(jobs[TWO[0]]["receipts"]), len(jobs[TWO[1]]["receipts"])) == (2, 1), (
        "the accettazione on both"
    )
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 4


# --- what cannot be processed ------------------------------------------------------------------------------
def test_an_unparseable_message_is_recorded_as_malformed_never_dropped(world):
    garbage = [b"\x00\xff\xfe not a message at all", bytes(range(256)) * 40]
    damaged = b"Content-Type: multipart/mixed\r\n\r\n--x\r\nbroken"
    ours = our_traffic(world, 2)
    world.fill([ours[0], *garbage, damaged, *ours[1:]])
    result = world.poll()
    assert result.fetched == 7 and result.recorded == 7 and result.by_kind[kinds.MALFORMED] == 2
    for raw in garbage:
        record = world.messages.get(BOX, hashlib.sha256(raw).hexdigest())
        assert record.kind == kinds.MALFORMED and "not an e-mail" in record.problems[0]
        assert world.archive.get(record.s3_key) == raw, "the original is archived as it came"
    record = world.messages.get(BOX, hashlib.sha256(damaged).hexdigest())
    assert any("boundary" in p for p in record.problems), "recorded, with what is wrong with it"
    assert result.receipts_matched == 4 and result.quarantined == []
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 7


def test_a_message_the_parser_fails_on_is_quarantined_and_the_mail_after_it_goes_on(world):
    raws = our_traffic(world, 3)
    bad = raws[2]

    def parser_with_a_bug(raw):
        if raw == bad:
            raise RecursionError("maximum recursion depth exceeded")
        return message.parse(raw)

    world.ingestor.classify = parser_with_a_bug
    world.fill(raws)
    outcome = world.handle()
    assert outcome.ok and len(outcome.result.quarantined) == 1
    assert "RecursionError" in outcome.result.quarantined[0]
    assert outcome.result.receipts_matched == 5, "every other receipt reconciled"
    [summary] = world.messages.query(BOX, index="Quarantined")
    assert summary.uid == 3 and summary.kind == kinds.MALFORMED
    assert world.archive.get(summary.s3_key) == bad, "archived whole"
    assert summary.quarantined["stage"] == "record" and "RecursionError" in summary.problems[0]
    status = world.mailboxes.status(BOX)
    assert status["quarantined"] == 1 and status["last_quarantined"]["uid"] == 3
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 6
    assert world.messages.count(BOX) == 6


def test_a_message_whose_record_cannot_fit_is_quarantined_but_still_reconciled(world):
    raws = our_traffic(world, 2)
    heavy = raws[0]

    def parse_heavy(raw):  # 100 addresses of 1,000 four-byte characters in To and in Cc
        msg = message.parse(raw)
        if raw == heavy:
            msg.to = msg.cc = [f"{'𝔞' * 990}{i}@pec.test" for i in range(100)]
        return msg

    world.ingestor.classify = parse_heavy
    world.fill(raws)
    result = world.poll()
    assert len(result.quarantined) == 1 and "over the 300,000-byte budget" in result.quarantined[0]
    [summary] = world.messages.query(BOX, index="Quarantined")
    assert summary.kind == kinds.ACCETTAZIONE and summary.ref_message_id == "<m0@pec.azienda.test>"
    assert result.receipts_matched == 4, "its effect on the job is not lost"
    assert world.outgoing.jobs("<m0@pec.azienda.test>")[0].state == "delivered"


def test_a_message_that_kills_the_poller_is_quarantined_after_a_few_polls(world):
    raws = our_traffic(world, 3)
    deadly = raws[3]
    parsed = []

    def parser_that_dies(raw):
        if raw == deadly:
            parsed.append(raw)
            raise PollerDied()
        return message.parse(raw)

    world.ingestor.classify = parser_that_dies
    world.fill(raws)
    # the first death is inside a batch (the cursor is written per batch: which message of it
    # stopped the poller is not known); the polls after it go one message at a time, each noted
    for _ in range(MAX_ATTEMPTS + 1):
        with pytest.raises(PollerDied):
            world.poll()
    assert len(parsed) == MAX_ATTEMPTS + 1
    assert world.messages.count(BOX) == 3, "the batch's messages before it recorded, once"
    result = world.poll()
    assert len(parsed) == MAX_ATTEMPTS + 1, "not parsed again"
    assert len(result.quarantined) == 1 and f"stopped {MAX_ATTEMPTS} times" in result.quarantined[0]
    [summary] = world.messages.query(BOX, index="Quarantined")
    assert summary.uid == 4 and summary.quarantined["stage"] == "classify" and summary.s3_key
    assert world.messages.count(BOX) == 6
    assert world.poll().fetched == 0


def test_a_poll_stopped_by_its_deadline_continues_and_is_no_attempt(world):
    world.ingestor.chunk_messages = 3
    world.fill(our_traffic(world, 4))
    for _ in range(MAX_ATTEMPTS + 1):
        budget = iter([100, 100, 0])
        outcome = world.handle(time_left=lambda budget=budget: next(budget, 0), margin=10)
        assert outcome.ok and outcome.result.more
    assert [r.continuation for r in world.requeued] == [1] * (MAX_ATTEMPTS + 1), "a continuation queued"
    result = world.poll()
    assert not result.more and result.quarantined == [] and world.messages.count(BOX) == 8


def test_a_message_too_large_to_fetch_is_left_on_the_provider_and_recorded(world):
    raws = our_traffic(world, 2)
    big = builder.messaggio_originale(
        mittente="x@pec.test",
        destinatari=[BOX],
        oggetto="grande",
        testo="x",
        allegati=[("grande.pdf", "application/pdf", b"%" * 300_000)],
        data=WHEN,
    )
    world.fill([raws[0], big, *raws[1:]])
    world.ingestor.max_message_bytes = 200_000
    result = world.poll()
    assert result.recorded == 4 and len(result.quarantined) == 1
    assert "left on the provider" in result.quarantined[0]
    assert all(2 not in batch for batch in world.server.sessions[-1].fetched), "never fetched"
    [summary] = world.messages.query(BOX, index="Quarantined")
    assert summary.uid == 2 and summary.s3_key is None and summary.quarantined["stage"] == "fetch"
    assert big in world.account.raws() and result.receipts_matched == 4


# --- the archive and the stores failing ---------------------------------------------------------------------
def test_a_message_that_cannot_be_archived_stays_on_the_provider_and_the_mailbox_says_why(world):
    raws = our_traffic(world, 2)
    world.fill(raws)
    world.archive.fail_puts()
    for _ in range(MAX_ATTEMPTS + 1):
        outcome = world.handle()
        assert (outcome.ok, outcome.error_kind) == (False, "archive")
    status = world.mailboxes.status(BOX)
    assert status["error_kind"] == "archive" and "UID 1" in status["last_error"]
    assert "tried again" in status["last_error"] and status["consecutive_failures"] == MAX_ATTEMPTS + 1
    assert world.messages.count(BOX) == 0 and world.archive.objects == {}
    cursor = world.mailboxes.get_cursor(BOX, "INBOX")
    assert (cursor.last_uid, cursor.attempts) == (0, 0), "not an attempt: never quarantined for it"
    assert world.account.raws() == raws, "every message still on the provider"
    world.archive.heal()
    world.archive.fail_puts(times=1)  # S3 fails once more, on the first put of the next poll
    with pytest.raises(ArchiveFailed):
        world.poll()
    outcome = world.handle()
    assert outcome.ok and outcome.result.quarantined == [], "S3 failing was no fault of the message"
    assert world.messages.count(BOX) == 4 and "last_error" not in world.mailboxes.status(BOX)


def test_when_the_store_fails_the_poll_stops_and_nothing_is_quarantined(world):
    world.fill(our_traffic(world, 2))
    record = world.messages.record
    calls = []

    def throttled(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutItem",
            )
        return record(*args, **kwargs)

    world.messages.record = throttled
    with pytest.raises(ClientError):
        world.handle()
    status = world.mailboxes.status(BOX)
    assert status["error_kind"] == "internal" and "ProvisionedThroughputExceeded" in status["last_error"]
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 1
    outcome = world.handle()
    assert outcome.ok and outcome.result.quarantined == [] and outcome.result.receipts_matched == 3
    assert world.messages.count(BOX) == 4 and world.messages.query(BOX, index="Quarantined") == []


def test_a_connection_lost_midway_keeps_what_was_recorded(world):
    world.fill(our_traffic(world, 3))
    world.ingestor.chunk_messages = 2
    world.server.drop_after = 4  # after LOGIN: STATUS, EXAMINE, UID SEARCH, then the sizes' FETCH breaks
    outcome = world.handle()
    assert (outcome.ok, outcome.error_kind) == (False, "interrupted")
    assert world.mailboxes.status(BOX)["error_kind"] == "interrupted"
    world.server.drop_after = 6  # the second batch's FETCH breaks: the first is recorded
    partial = world.handle()
    assert partial.error_kind == "interrupted" and world.messages.count(BOX) == 2
    world.server.drop_after = None
    outcome = world.handle()
    assert outcome.ok and outcome.result.fetched == 4 and world.messages.count(BOX) == 6


def test_bad_credentials_are_recorded_and_nothing_is_read(world):
    world.fill(our_traffic(world, 1))
    outcome = world.handle(password="sbagliata")
    assert (outcome.ok, outcome.error_kind) == (False, "auth")
    status = world.mailboxes.status(BOX)
    assert status["error_kind"] == "auth" and "login refused" in status["last_error"]
    assert "sbagliata" not in str(status) and world.messages.count(BOX) == 0
    world.server.unreachable = True
    assert world.handle().error_kind == "unreachable"


# --- the provider changing under us ---------------------------------------------------------------------------
def test_a_uidvalidity_change_resyncs_without_duplicates(world):
    raws = mixed(15, 5)
    config = fakes.config(BOX, folders=("Ricevute",))
    world.fill(raws, folder="Ricevute")
    world.poll(config)
    old = world.account.folder("Ricevute").uidvalidity
    assert world.mapped("Ricevute") == world.shas("Ricevute")
    world.account.rebuild("Ricevute")
    newcomer = builder.messaggio_originale(
        mittente="a@pec.test", destinatari=[BOX], oggetto="nuovo", testo="x", data=WHEN
    )
    world.fill([*raws, newcomer], folder="Ricevute")
    result = world.poll(config)
    assert result.resynced == ["Ricevute"]
    assert result.recorded == 1 and result.already_recorded == len(raws)
    assert world.messages.count(BOX) == len(set(raws)) + 1
    uidvalidity = world.account.folder("Ricevute").uidvalidity
    found = world.messages.at_location(BOX, "Ricevute", uidvalidity, world.account.uids("Ricevute"))
    assert len(found) == len(set(raws)) + 1, "every record relocated under the new UIDVALIDITY"
    assert world.mapped("Ricevute") == world.shas("Ricevute")
    assert world.messages.at_location(BOX, "Ricevute", old, list(range(1, 100))) == {}, "the old map dropped"


# --- saturation ----------------------------------------------------------------------------------------------
def test_nothing_leaves_the_provider_unless_its_archive_copy_verifies(world):
    raws = mixed(10, 8)
    world.fill(raws[:6], when=WHEN - timedelta(days=200))
    world.fill(raws[6:])
    world.poll()  # archived and recorded, nothing removed
    records = {r["uid"]: r for r in world.messages.records(BOX)}
    missing, tampered = records[1], records[2]
    world.archive.delete(missing["s3_key"])
    world.archive.overwrite(tampered["s3_key"], b"something else")
    policy = SaturationPolicy(Saturation.AFTER_DAYS, days=30, expunge=True)
    result = world.poll(fakes.config(BOX, saturation=policy))
    assert result.expunged == 4 and len(result.refused) == 2
    assert any("missing" in r for r in result.refused) and any("differs" in r for r in result.refused)
    assert world.account.uids() == [1, 2, 7, 8, 9, 10], "the recent ones and the unverifiable ones stay"
    assert world.messages.get(BOX, missing["sha256"]).archive_problem is not None
    gone = world.messages.get(BOX, records[3]["sha256"])
    assert gone.on_provider == "expunged" and gone.left_provider_at is not None
    uidvalidity = world.account.folder().uidvalidity
    on_provider = world.messages.at_location(BOX, "INBOX", uidvalidity, list(range(1, 11)))
    assert sorted(on_provider) == world.account.uids(), "what left is out of the UID map"
    # the provider's copies, still hashing to their records, were put back in the archive
    assert all("archived again from the provider" in r for r in result.refused), result.refused
    for record in (missing, tampered):
        assert world.archive.verify(record["s3_key"], record["sha256"]).ok
    # they leave the provider only at a later check, once their copies verify; the mailbox's
    # health says what happened meanwhile, in words, and clears at the next clean poll
    world.mailboxes.put(fakes.config(BOX, saturation=policy))
    world.account.append(b"From: a@b\r\nSubject: late\r\n\r\nlate", when=WHEN - timedelta(days=200))
    world.archive.overwrite(missing["s3_key"], b"damaged again")
    outcome = world.handle()
    assert outcome.result.expunged == 2, "the other one put back, and the late one"
    assert world.account.uids() == [1, 7, 8, 9, 10]
    status = world.mailboxes.status(BOX)
    assert status["error_kind"] == "archive" and status["consecutive_failures"] == 0
    assert status["last_error"].startswith("La copia in archivio di un messaggio non corrisponde")
    assert status["last_success_at"] == status["last_poll_at"]
    assert world.handle().result.expunged == 1 and world.account.uids() == [7, 8, 9, 10]
    assert "last_error" not in world.mailboxes.status(BOX)


def test_a_copy_the_provider_no_longer_matches_is_not_archived_again(world):
    world.fill(mixed(2, 1), when=WHEN - timedelta(days=200))
    world.poll()
    record = world.messages.records(BOX)[0]
    world.archive.overwrite(record["s3_key"], b"something else")
    world.account.folder().messages[
        record["uid"]
    ].raw = b"From: a@b\r\n\r\nnot what was recorded"  # the provider's fault
    result = world.poll(fakes.config(BOX, saturation=SaturationPolicy(Saturation.AFTER_DAYS, days=30)))
    assert any("the provider's copy differs too" in r for r in result.refused), result.refused
    assert not world.archive.verify(record["s3_key"], record["sha256"]).ok
    assert record["uid"] in world.account.uids()


def test_old_archived_messages_move_to_the_archive_folder(world):
    raws = mixed(10, 8)
    world.fill(raws[:6], when=WHEN - timedelta(days=200))
    world.fill(raws[6:])
    policy = SaturationPolicy(Saturation.AFTER_DAYS, days=30, archive_folder="Archivio-pecflow")
    result = world.poll(fakes.config(BOX, saturation=policy))
    assert result.moved == 6 and result.refused == []
    assert len(world.account.uids()) == 4 and len(world.account.uids("Archivio-pecflow")) == 6


def test_above_quota_expunges_oldest_first_until_below_the_line(world):
    world.account.quota_kb = 400
    blob = bytes(range(256)) * 100  # 25.6 KB, about 35 KB in base64
    raws = [
        builder.messaggio_originale(
            mittente="a@pec.test",
            destinatari=[BOX],
            oggetto=f"n. {i}",
            testo="x",
            allegati=[(f"doc{i}.pdf", "application/pdf", blob)],
            data=WHEN + timedelta(minutes=i),
        )
        for i in range(8)
    ]
    for i, raw in enumerate(raws):
        world.account.append(raw, when=WHEN + timedelta(minutes=i))
    policy = SaturationPolicy(Saturation.ABOVE_QUOTA, percent=40, expunge=True)
    result = world.poll(fakes.config(BOX, saturation=policy))
    assert result.usage_percent > 60 and result.expunged >= 3
    assert world.account.used_kb * 100 / 400 <= 40
    assert world.account.raws() == raws[result.expunged :], "the oldest went first"


def test_the_quota_is_read_when_mail_arrives_and_otherwise_at_most_hourly(world):
    world.account.quota_kb = 10_000
    world.fill(mixed(3, 1))
    assert world.handle().result.usage_percent > 0
    assert world.mailboxes.status(BOX)["usage"]["percent"] > 0
    idle = world.handle()
    assert idle.result.imap_commands == 2, "LOGIN and STATUS: the quota was read less than an hour ago"
    fakes.CLOCK.advance(3601)
    assert world.handle().result.imap_commands == 3, "an hour later: GETQUOTAROOT again"
