"""What the console's campaign wizard and panel ask of CampaignDesk, on fakes, through the real
fan-out: a campaign submitted as a dry run is validated and waits; its report lists the bad rows
(row, column, reason), its preview renders the first messages (one per group with group_by);
`confirm` starts its queuing through the fan-out queue with the same pinned files; the provider's
terms and quota of the sending mailbox, the first campaign told apart; the panel's series of
counter snapshots (bounded, from the campaign item, never the jobs) and the expected end."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pecflow.domain.access import Forbidden, Person, Role
from pecflow.domain.records import CampaignRecord
from pecflow.services import campaign_desk
from pecflow.services.admin import CampaignAdmin
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import CampaignConflict, CampaignDesk, expected_end
from pecflow.services.fanout import fan_out
from tests import fakes

BOX = "ufficio@pec.alfa.test"
marco = Person("marco", "marco@alfa.test", roles={BOX: Role.MANAGER})
anna = Person("anna", "anna@alfa.test", roles={BOX: Role.OPERATOR})
MANIFEST = {
    "mailbox": BOX,
    "name": "Solleciti",
    "subject": "Sollecito – {{ ragione_sociale }}",
    "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo {{ importo|importo }}.\n",
    "purpose": "sollecito di pagamento",
    "dry_run": True,
}


def csv_of(rows: list[tuple[str, str, str]]) -> bytes:
    lines = ["pec;ragione_sociale;importo", *(";".join(r) for r in rows)]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


GOOD = [(f"cliente{i}@pec.beta.test", f"Cliente {i} S.r.l.", f"{i}00,50") for i in range(1, 6)]


class World:
    def __init__(self, rows=GOOD, manifest=MANIFEST, preset: str = "legalmail"):
        self.audit = fakes.FakeAuditStore()
        self.campaigns = fakes.FakeCampaignStore()
        self.outgoing = fakes.FakeOutgoingStore(self.campaigns)
        self.send_queue, self.fanout_queue = fakes.FakeQueue(), fakes.FakeQueue()
        self.mailboxes = fakes.FakeMailboxStore()
        self.mailboxes.put(fakes.config(BOX, quota_preset=preset))
        self.packages: dict[str, fakes.FakeCampaignFiles] = {}
        admin = CampaignAdmin(self.campaigns, self.outgoing, self.send_queue, AuditLog(self.audit))
        self.desk = CampaignDesk(
            admin, fakes.FakeUploads(), AuditLog(self.audit), cursor_secret=b"k" * 32,
            files_of=self.packages.__getitem__, mailbox_of=self.mailboxes.get, fanout_queue=self.fanout_queue,
        )  # fmt: skip
        self.rows, self.manifest = rows, manifest

    def submit(self, campaign_id: str = "solleciti") -> str:
        self.packages[campaign_id] = fakes.FakeCampaignFiles(
            campaign_id,
            {"manifest.json": json.dumps(self.manifest).encode(), "recipients.csv": csv_of(self.rows)},
        )
        return self.fan_out(campaign_id, "v1")

    def fan_out(self, campaign_id: str, version: str | None = None) -> str:
        return fan_out(
            campaign_id, package=self.packages[campaign_id], campaigns=self.campaigns, outgoing=self.outgoing,
            send_batch=self.send_queue.send_batch, manifest_version=version,
        ).status  # fmt: skip


def test_a_dry_run_waits_validated_and_confirm_queues_it_through_the_fanout_queue():
    world = World()
    assert world.submit() == "validated"
    assert world.send_queue.sent == [] and world.campaigns.counters("solleciti")["total"] == 0
    done = world.desk.act(marco, BOX, "solleciti", "confirm")
    assert done == {"status": "queuing"}
    assert world.campaigns.counters("solleciti")["total"] == 5  # counted from the confirmation
    [continuation] = world.fanout_queue.sent
    assert json.loads(continuation["MessageBody"]) == {"campaign_id": "solleciti"}
    assert world.fan_out("solleciti") == "sending"  # the fan-out queue's message, as the function runs it
    assert len(world.send_queue.sent) == 5
    item = world.campaigns.get("solleciti")
    assert item.dry_run is False and item.extra["confirmed_by"] == "marco"
    assert [e.details.get("change") for e in world.audit.rows[BOX].values()] == ["confirmed"]
    with pytest.raises(CampaignConflict, match="only a campaign checked and waiting"):
        world.desk.act(marco, BOX, "solleciti", "confirm")  # a campaign runs once


def test_an_invalid_campaign_cannot_be_confirmed_and_its_report_lists_the_bad_rows():
    bad = [*GOOD[:2], ("non-un-indirizzo", "Cliente X", "10"), *GOOD[2:]]
    world = World(rows=bad)
    assert world.submit() == "invalid"
    with pytest.raises(CampaignConflict):
        world.desk.act(marco, BOX, "solleciti", "confirm")
    report = world.desk.report(marco, BOX, "solleciti")
    assert report["status"] == "invalid" and report["error_count"] == 1
    [error] = report["errors"]
    assert error["row"] == 4 and error["column"] == "pec" and error["reason"]
    assert report["header"] == ["pec", "ragione_sociale", "importo"]
    assert set(report["merge_fields"]) >= {"ragione_sociale", "importo"}
    assert report["errors_truncated"] is False


def test_the_report_of_a_campaign_not_yet_validated_is_its_summary_alone():
    world = World()
    world.campaigns.create("nuova", {"status": "validating", "mailbox": BOX})
    world.packages["nuova"] = fakes.FakeCampaignFiles("nuova")
    report = world.desk.report(marco, BOX, "nuova")
    assert report["errors"] == [] and report["error_count"] == 0 and report["status"] == "validating"


def test_the_preview_renders_the_first_messages_as_the_campaign_would():
    world = World()
    world.submit()
    shown = world.desk.preview(marco, BOX, "solleciti", 2)
    assert [m["rows"] for m in shown] == [[2], [3]]
    first = shown[0]
    assert first["to"] == "cliente1@pec.beta.test" and first["subject"] == "Sollecito – Cliente 1 S.r.l."
    assert "100,50 €" in first["text"] and first["attachments"] == [] and first["cc"] is None


def test_the_preview_of_a_grouped_campaign_shows_one_message_per_group():
    rows = [("a@pec.beta.test", "A", "1"), ("b@pec.beta.test", "B", "2"), ("A@pec.beta.test", "A", "3")]
    manifest = {**MANIFEST, "group_by": "pec", "cc": "archivio@pec.alfa.test",
                "body_text": "{% for r in righe %}{{ r.importo|importo }};{% endfor %}"}  # fmt: skip
    world = World(rows=rows, manifest=manifest)
    assert world.submit() == "validated"
    shown = world.desk.preview(marco, BOX, "solleciti", 3)
    assert [m["rows"] for m in shown] == [[2, 4], [3]]
    assert shown[0]["text"] == "1,00 €;3,00 €;" and shown[0]["cc"] == "archivio@pec.alfa.test"


def test_the_provider_terms_and_quota_of_the_sending_mailbox_and_its_first_campaign():
    world = World(preset="legalmail")
    terms = world.desk.terms(marco, BOX)
    assert terms["preset"] == "legalmail" and terms["needs_agreement"] is True
    assert any("InfoCert" in t for t in terms["terms"])
    assert terms["quota"] == {"preset": "legalmail", "limit": 6, "window_seconds": 60.0, "rolling": True}
    assert terms["first_campaign"] is True
    world.submit()
    assert world.desk.terms(marco, BOX)["first_campaign"] is True  # a dry run sent nothing
    world.desk.act(marco, BOX, "solleciti", "confirm")
    assert world.desk.terms(marco, BOX)["first_campaign"] is False
    with pytest.raises(Forbidden):
        world.desk.terms(anna, BOX)  # an operator sends no campaign


def test_the_series_adds_a_point_when_the_counters_move_and_stays_bounded(monkeypatch):
    world = World(preset="aruba")
    world.submit()
    world.desk.act(marco, BOX, "solleciti", "confirm")
    world.fan_out("solleciti")
    now = [1_800_000_000.0]
    monkeypatch.setattr(campaign_desk.clock, "timestamp", lambda: now[0])
    shown = world.desk.show(marco, BOX, "solleciti")
    assert shown["series"]["fields"] == ["at", *campaign_desk.SERIES]
    [start] = shown["series"]["points"]  # nothing moved yet: the start alone (total still to send)
    assert start[1:] == [0, 0, 0, 0, 0, 5]
    assert shown["expected_end"] is not None and shown["quota"]["limit"] == 250
    now[0] += 60
    world.campaigns._transact_counters("solleciti", {"to_send": -2, "sent": 2})
    points = world.desk.show(marco, BOX, "solleciti")["series"]["points"]
    assert len(points) == 2 and points[-1] == [1_800_000_060, 2, 0, 0, 0, 0, 3]
    assert world.desk.show(marco, BOX, "solleciti")["series"]["points"] == points  # unchanged: no point
    now[0] += 1  # within a step: the last point replaced
    world.campaigns._transact_counters("solleciti", {"to_send": -1, "sent": 1})
    points = world.desk.show(marco, BOX, "solleciti")["series"]["points"]
    assert len(points) == 2 and points[-1][0] == 1_800_000_061 and points[-1][1] == 3
    for _ in range(300):  # a long campaign: the series stays bounded, its first and last points kept
        now[0] += 30
        world.campaigns._transact_counters("solleciti", {"sent": 1})
        world.desk.show(marco, BOX, "solleciti")
    points = world.campaigns.get("solleciti").extra["series"]
    assert len(points) <= campaign_desk.SERIES_POINTS
    assert points[0] == start and points[-1][0] == int(now[0])
    assert [p[0] for p in points] == sorted(p[0] for p in points)


def test_the_expected_end_follows_the_quota_from_now_or_from_the_start_time(monkeypatch):
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    monkeypatch.setattr(campaign_desk.clock, "timestamp", lambda: now.timestamp())
    quota = {"preset": "aruba", "limit": 250, "window_seconds": 1200.0, "rolling": True}
    sending = CampaignRecord("c", status="sending")
    assert expected_end(sending, {"to_send": 0}, quota) is None
    assert expected_end(sending, {"to_send": 10}, None) is None
    assert expected_end(sending, {"to_send": 10}, quota).startswith("2026-03-02T09:00:05")
    # 600 left: 250 now, 250 after one window, 100 after two
    assert expected_end(sending, {"to_send": 600}, quota).startswith("2026-03-02T09:40:50")
    later = CampaignRecord("c", status="queuing", start_at="2026-03-03T08:00:00+01:00")
    assert expected_end(later, {"to_send": 10}, quota).startswith("2026-03-03T07:00:05")
    paused = CampaignRecord("c", status="paused")
    assert expected_end(paused, {"to_send": 10}, quota) is None


# --- through the API ---------------------------------------------------------------------------------
def api_of(world: World):
    from pecflow.api import Services, build_app
    from pecflow.services.inbox import Inbox
    from pecflow.services.people import PeopleAdmin
    from tests.unit.test_api import Records

    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(world.audit), fakes.FakeDirectory())
    for name, role in (("otto", Role.OPERATOR), ("marco", Role.MANAGER)):
        people.add("test", name, f"{name}@alfa.test")
        people.set_role("test", name, BOX, role)
    inbox = Inbox(
        fakes.FakeInboxStore(world.audit), world.audit, store, Records(key=None), cursor_secret=b"s" * 32
    )
    return build_app(Services(inbox, people, AuditLog(world.audit), world.desk))


def test_the_wizard_routes_through_the_api_for_managers_only():
    from tests.unit.test_api import call

    bad = [*GOOD[:2], ("non-un-indirizzo", "Cliente X", "10"), *GOOD[2:]]
    world = World(rows=bad)
    world.submit("prima")
    world.rows = GOOD
    world.submit("seconda")
    app = api_of(world)
    m = f"/mailboxes/{BOX}"
    status, terms = call(app, "GET", f"{m}/campaign-terms", user="marco")
    assert status == 200 and terms["preset"] == "legalmail" and terms["first_campaign"] is True
    status, report = call(app, "GET", f"{m}/campaigns/prima/report", user="marco", query={"limit": "10"})
    assert status == 200 and [(e["row"], e["column"]) for e in report["errors"]] == [(4, "pec")]
    status, page = call(app, "GET", f"{m}/campaigns/seconda/preview", user="marco", query={"count": "2"})
    assert status == 200 and [p["to"] for p in page["messages"]] == [r[0] for r in GOOD[:2]]
    status, done = call(app, "POST", f"{m}/campaigns/prima/actions", user="marco", body={"action": "confirm"})
    assert status == 409 and "invalid" in done["message"]  # an invalid campaign is never sent
    status, done = call(
        app, "POST", f"{m}/campaigns/seconda/actions", user="marco", body={"action": "confirm"}
    )
    assert status == 200 and done == {"status": "queuing"}
    for path in ("/campaign-terms", "/campaigns/prima/report", "/campaigns/seconda/preview"):
        assert call(app, "GET", m + path, user="otto")[0] == 403, path  # an operator sends no campaign
