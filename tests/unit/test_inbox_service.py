"""The inbox service on fakes: roles on every call (no role: not found), presa in carico with one
holder at a time and the loser told who holds it, each act audited in the same write, views
recorded but never taking a message in charge, the bin for admins only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from pecflow.domain.access import DisabledPerson, Forbidden, NotVisible, Person, Role
from pecflow.domain.handling import Act, HandlingConflict, NotAllowed, Status
from pecflow.domain.inbox import CursorError, Filters
from pecflow.services.audit import AuditLog
from pecflow.services.inbox import Inbox, InboxError, Source
from tests import fakes

BOX = "ufficio@pec.alfa.test"
OTHER = "legale@pec.alfa.test"
WEB = Source("192.0.2.5", "Mozilla/5.0")

anna = Person("anna", "anna@alfa.test", roles={BOX: Role.OPERATOR})
bruno = Person("bruno", "bruno@alfa.test", roles={BOX: Role.OPERATOR})
vera = Person("vera", "vera@alfa.test", roles={BOX: Role.VIEWER})
marco = Person("marco", "marco@alfa.test", roles={BOX: Role.MANAGER})
carla = Person("carla", "carla@alfa.test", roles={BOX: Role.ADMIN, OTHER: Role.ADMIN})


class People:
    def __init__(self, *people):
        self.by_name = {p.username: p for p in people}

    def person(self, username):
        return self.by_name.get(username)


def record(i: int, kind="posta-certificata", **extra):
    return {
        "sha256": f"{i:064x}",
        "kind": kind,
        "subject": f"Pratica {i} – richiesta documenti",
        "from": f"cliente{i % 3}@pec.beta.it",
        "to": [BOX],
        "received_at": f"2026-11-{1 + i % 28:02d}T09:00:00+00:00",
        "received_key": f"2026-11-{1 + i % 28:02d}T09:{i % 60:02d}:00.000000Z#{i:016x}",
        **extra,
    }


class Records:
    def __init__(self):
        self.items = {}

    def get(self, mailbox, sha256):
        return self.items.get((mailbox, sha256))


@pytest.fixture
def world():
    audit = fakes.FakeAuditStore()
    rows = fakes.FakeInboxStore(audit)
    records = Records()
    for i in range(12):
        rec = record(i, kind="avvenuta-consegna" if i % 4 == 3 else "posta-certificata")
        rows.add(BOX, rec)
        records.items[(BOX, rec["sha256"])] = rec
    rows.index_words(BOX, rows.rows())  # as the poller does at the end of its batch
    inbox = Inbox(
        rows,
        audit,
        People(anna, bruno, vera, marco, carla),
        records,
        cursor_secret=b"c" * 32,
        now=fakes.Ticking(),
    )
    return inbox, rows, audit


SHA = f"{1:064x}"


def test_without_a_role_the_mailbox_and_its_messages_are_not_found(world):
    inbox, *_ = world
    with pytest.raises(NotVisible):
        inbox.list(anna, OTHER, Filters())
    with pytest.raises(NotVisible):
        inbox.show(anna, OTHER, SHA)
    with pytest.raises(NotVisible):
        inbox.act(anna, OTHER, SHA, Act.TAKE)
    with pytest.raises(NotVisible):
        inbox.show(anna, BOX, "f" * 64)  # a message that does not exist: the same answer
    with pytest.raises(DisabledPerson):
        inbox.list(Person("anna", "a", enabled=False, roles={BOX: Role.ADMIN}), BOX, Filters())


def test_the_list_leaves_receipts_out_and_pages_with_a_cursor(world):
    inbox, *_ = world
    first = inbox.list(vera, BOX, Filters(), size=5)
    assert len(first.rows) == 5 and first.cursor
    second = inbox.list(vera, BOX, Filters(), cursor=first.cursor, size=5)
    assert len(second.rows) == 4 and second.cursor is None  # 9 messages, 3 receipts apart
    every = first.rows + second.rows
    assert all(r["kind"] == "posta-certificata" for r in every)
    assert [r["received_key"] for r in every] == sorted((r["received_key"] for r in every), reverse=True)
    assert "pk" not in every[0] and "list_pk" not in every[0]
    assert len(inbox.list(vera, BOX, Filters(receipts=True)).rows) == 3
    with pytest.raises(CursorError):
        inbox.list(vera, BOX, Filters(kind="anomalia"), cursor=first.cursor)


def test_opening_records_a_view_and_does_not_take_in_charge(world):
    inbox, rows, audit = world
    shown = inbox.show(vera, BOX, SHA, WEB)
    assert shown["row"]["handling"] == "da-gestire" and shown["message"]["subject"].startswith("Pratica 1")
    (event,) = audit.events(BOX)
    assert (event.actor, event.action, event.message, event.source_ip) == ("vera", "view", SHA, "192.0.2.5")
    assert rows.row(BOX, SHA)["version"] == 0


def test_take_in_charge_then_the_other_is_told_who_holds_it(world):
    inbox, rows, audit = world
    held = inbox.act(anna, BOX, SHA, Act.TAKE, source=WEB)
    assert (held.status, held.holder) == (Status.IN_CHARGE, "anna")
    with pytest.raises(HandlingConflict) as lost:
        inbox.act(bruno, BOX, SHA, Act.TAKE)
    assert lost.value.code == "held-by-other" and "anna since 26/11/2026" in str(lost.value)
    assert [(e.actor, e.action) for e in audit.events(BOX)] == [("anna", "take-in-charge")]
    assert [r["holder"] for r in inbox.list(vera, BOX, Filters(holder="anna")).rows] == ["anna"]
    assert SHA not in {r["sha256"] for r in inbox.list(vera, BOX, Filters(handling=Status.OPEN)).rows}


def test_two_operators_racing_exactly_one_wins(world):
    inbox, rows, audit = world
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def take(person):
        barrier.wait()
        try:
            results[person.username] = inbox.act(person, BOX, SHA, Act.TAKE)
        except HandlingConflict as exc:
            results[person.username] = exc

    threads = [threading.Thread(target=take, args=(p,)) for p in (anna, bruno)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, r in results.items() if not isinstance(r, HandlingConflict)]
    assert len(winners) == 1
    assert [e.action for e in audit.events(BOX)] == ["take-in-charge"]
    assert AuditLog(audit).verify(BOX).ok


def test_roles_limit_the_acts(world):
    inbox, *_ = world
    with pytest.raises(Forbidden):
        inbox.act(vera, BOX, SHA, Act.TAKE)
    with pytest.raises(Forbidden):
        inbox.act(anna, BOX, SHA, Act.ASSIGN, to="bruno")
    with pytest.raises(InboxError, match="vera cannot take messages"):
        inbox.act(marco, BOX, SHA, Act.ASSIGN, to="vera")
    with pytest.raises(InboxError, match="no active person called nessuno"):
        inbox.act(marco, BOX, SHA, Act.ASSIGN, to="nessuno")
    assigned = inbox.act(marco, BOX, SHA, Act.ASSIGN, to="bruno")
    assert (assigned.holder, assigned.by) == ("bruno", "marco")
    with pytest.raises(HandlingConflict):
        inbox.act(anna, BOX, SHA, Act.RELEASE)
    inbox.act(bruno, BOX, SHA, Act.MARK_HANDLED, note="documenti inviati")
    listed = inbox.list(vera, BOX, Filters(handling=Status.HANDLED)).rows
    assert [(r["holder"], r["note"]) for r in listed] == [("bruno", "documenti inviati")]
    with pytest.raises(InboxError, match="receipts are not taken in charge"):
        inbox.act(anna, BOX, f"{3:064x}", Act.TAKE)


def test_repeating_an_act_writes_and_audits_nothing(world):
    inbox, _, audit = world
    inbox.act(anna, BOX, SHA, Act.TAKE)
    inbox.act(anna, BOX, SHA, Act.TAKE)
    assert len(audit.events(BOX)) == 1


def test_the_bin_is_for_admins_and_keeps_everything(world):
    inbox, rows, audit = world
    with pytest.raises(Forbidden):
        inbox.delete(marco, BOX, SHA, "doppione")
    with pytest.raises(InboxError, match="say why"):
        inbox.delete(carla, BOX, SHA, "  ")
    inbox.act(anna, BOX, SHA, Act.TAKE)
    inbox.delete(carla, BOX, SHA, "doppione di una PEC già protocollata", WEB)
    assert SHA not in {r["sha256"] for r in inbox.list(vera, BOX, Filters()).rows}
    assert SHA not in {r["sha256"] for r in inbox.list(vera, BOX, Filters(holder="anna")).rows}
    with pytest.raises(NotVisible):
        inbox.show(anna, BOX, SHA)
    with pytest.raises(Forbidden):
        inbox.list(anna, BOX, Filters(bin=True))
    binned = inbox.list(carla, BOX, Filters(bin=True)).rows
    assert [r["deleted"]["reason"] for r in binned] == ["doppione di una PEC già protocollata"]
    inbox.restore(carla, BOX, SHA)
    restored = rows.row(BOX, SHA)
    assert "deleted" not in restored and restored["holder_pk"] == f"{BOX}#anna"
    assert SHA in {r["sha256"] for r in inbox.list(vera, BOX, Filters(holder="anna")).rows}
    assert [e.action for e in audit.events(BOX)] == ["take-in-charge", "delete", "restore"]
    assert audit.events(BOX)[1].details == {"reason": "doppione di una PEC già protocollata"}


def test_word_search_finds_subject_and_parties(world):
    inbox, *_ = world
    found = inbox.list(vera, BOX, Filters(text="pratica cliente1"))
    assert {r["subject"] for r in found.rows} == {
        f"Pratica {i} – richiesta documenti" for i in (1, 4, 10)
    }  # 7 is a receipt
    assert found.items_read <= 2 * len(found.rows) + 4


def test_not_allowed_is_raised_for_assign_by_an_operator_in_the_domain_too():
    from pecflow.domain.handling import Handling, decide

    with pytest.raises(NotAllowed):
        decide(Handling(), Act.ASSIGN, actor="anna", role=Role.OPERATOR, now=datetime.now(UTC), to="bruno")
