"""No person reaches another mailbox by naming it or one of its ids. Every operation of the
published OpenAPI document (openapi.json: a new route is covered the day it is published) is
called by an administrator of one mailbox (carla, of BOX) three ways:

- on her own mailbox and its own objects: the control, which must get past the access check
  (anything but 403/404/422), so that the refusals below prove the check and not a typo;
- on another mailbox and its objects: 403 or 404, never an answer;
- on her own mailbox with another mailbox's message or campaign id: 404.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.pecbuild.builder import messaggio_originale
from pecflow.adapters.archive import sha256_hex
from pecflow.api import Services, build_app
from pecflow.domain.access import Role
from pecflow.domain.mailbox import MailboxConfig
from pecflow.services.admin import CampaignAdmin
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import CampaignDesk
from pecflow.services.campaign_tests import CampaignTests
from pecflow.services.conservation import ConservationExports
from pecflow.services.evidence import EvidencePacks
from pecflow.services.inbox import Inbox
from pecflow.services.invoices import InvoiceDesk, InvoiceLedger
from pecflow.services.mailbox_desk import MailboxDesk
from pecflow.services.people import PeopleAdmin
from pecflow.services.rules import RulesDesk
from tests import fakes
from tests.unit.test_api import call
from tests.unit.test_api_evidence import Chunks, Packs
from tests.unit.test_api_rules import RulesInMemory
from tests.unit.test_conservation import Jobs, Packages, Periods
from tests.unit.test_conservation import Records as ExportedRecords

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text())
BOX, OTHER = "ufficio@pec.alfa.test", "segreteria@pec.beta.test"
RAW = {
    box: messaggio_originale(mittente="cliente@pec.gamma.test", destinatari=[box], oggetto=f"Pratica {box}",
                             testo="Buongiorno\n", allegati=[("a.pdf", "application/pdf", b"%PDF-1.7 ...")])
    for box in (BOX, OTHER)
}  # fmt: skip
SHA = {box: sha256_hex(raw) for box, raw in RAW.items()}
CAMPAIGN = {BOX: "solleciti", OTHER: "altrui"}
PERSON = {BOX: "collega", OTHER: "estraneo"}  # a person with a role on that mailbox only


class Records:
    """The message records, each of its own mailbox only."""

    def __init__(self, keys: dict[str, str]):
        self.keys = keys

    def get(self, mailbox: str, sha256: str) -> dict[str, Any] | None:
        if SHA.get(mailbox) != sha256:
            return None
        return {"sha256": sha256, "kind": "posta-certificata", "subject": "Pratica", "from": "cliente@pec.gamma.test",
                "message_id": f"<m@{mailbox.split('@')[1]}>", "s3_key": self.keys[mailbox]}  # fmt: skip


def world():
    audit = fakes.FakeAuditStore()
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    rows = fakes.FakeInboxStore(audit)
    archive = fakes.FakeArchive()
    keys = {}
    for box in (BOX, OTHER):
        rows.add(box, {"sha256": SHA[box], "kind": "posta-certificata", "subject": "Pratica",
                       "received_key": f"2026-11-20T09:00:00.000000Z#{SHA[box][:16]}"})  # fmt: skip
        keys[box] = archive.store(RAW[box]).key
    for name, box, role in (("carla", BOX, Role.ADMIN), ("collega", BOX, Role.OPERATOR),
                            ("boss", OTHER, Role.ADMIN), ("estraneo", OTHER, Role.OPERATOR)):  # fmt: skip
        people.add("test", name, f"{name}@alfa.test")
        people.set_role("test", name, box, role)
    records = Records(keys)
    outgoing = fakes.FakeOutgoingStore(fakes.FakeCampaignStore())
    inbox = Inbox(rows, audit, store, records, cursor_secret=b"s" * 32, outbox=outgoing,
                  send_queue=fakes.FakeQueue(), originals=archive)  # fmt: skip
    campaigns = fakes.FakeCampaignStore()
    for box in (BOX, OTHER):
        campaigns.create(CAMPAIGN[box], {"status": "sending", "mailbox": box})
    desk = CampaignDesk(
        CampaignAdmin(
            campaigns=campaigns, outgoing=outgoing, send_queue=fakes.FakeQueue(), audit=AuditLog(audit)
        ),
        fakes.FakeUploads(),
        AuditLog(audit),
    )
    mailboxes = fakes.FakeMailboxStore()
    for box in (BOX, OTHER):
        mailboxes.put(MailboxConfig(address=box, imap_host=f"imap.{box.split('@')[1]}"))
    provider = fakes.FakeImapServer()
    boxes = MailboxDesk(mailboxes, fakes.FakeSecrets(), provider.open, provider.open, people, AuditLog(audit),
                        fakes.FakeRateLimiter().used, lambda mailbox: 0, stack_name="pecflow")  # fmt: skip
    evidence = EvidencePacks(records, AuditLog(audit), Chunks(archive), rows=rows, packs=Packs())
    rules = RulesInMemory()
    configs = {box: fakes.config(box) for box in (BOX, OTHER)}
    tests = CampaignTests(outgoing, archive, fakes.FakeQueue(), configs.get,
                          lambda cid: fakes.FakeCampaignFiles(cid, RECIPIENTS), AuditLog(audit),
                          campaign_mailbox=lambda cid: getattr(campaigns.get(cid), "mailbox", None))  # fmt: skip
    invoices = InvoiceDesk(
        InvoiceLedger(fakes.FakeInvoiceStore(), fakes.FakeInvoiceFiles()), outbox=outgoing,
        send_queue=fakes.FakeQueue(), archive=archive, mailbox_of=configs.get,
    )  # fmt: skip
    conservation = ConservationExports(
        ExportedRecords(), Periods(), Chunks(archive), AuditLog(audit), outbox=Jobs(), packages=Packages(),
    )  # fmt: skip
    services = Services(inbox, people, AuditLog(audit), desk, tests, mailboxes=boxes, evidence=evidence,
                        rules=RulesDesk(rules, AuditLog(audit)), invoices=invoices,
                        conservation=conservation)  # fmt: skip
    return build_app(services)


# --- requests made from the document -------------------------------------------------------------------
BODIES = {  # bodies a rule beyond the schema would refuse (the schema's own are made below)
    "ForwardIn": {"to": "legale@pec.gamma.test", "text": "Per competenza"},
    "HandlingAct": {"act": "take-in-charge"},
    "UploadRequest": {"files": ["recipients.csv"]},
    "RoleGrant": {"role": "viewer"},
    "Document": {"version": 1, "rules": []},
    "ExportRequest": {"first": "2026-11-01", "last": "2026-11-15"},
    "InvoiceToSend": {"filename": "IT01234567890_00001.xml", "content_base64": "PD94bWw+"},
    "TestSendRequest": {"row": 2, "to": "prova@pec.alfa.test",
                        "manifest": {"mailbox": BOX, "subject": "Avviso", "body_text": "Gentile {{ nome }}"}},
}  # fmt: skip
RECIPIENTS = {"recipients.csv": b"Nome;PEC\r\nMario;mario@pec.gamma.test\r\n"}


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def example(schema: dict) -> Any:
    """The least value the schema accepts (a model's own fields: the first of an enum, ...)."""
    schema = _resolve(schema)
    if schema.get("title") in BODIES:
        return BODIES[schema["title"]]
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if "enum" in schema or "const" in schema:
        return schema.get("enum", [schema.get("const")])[0]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(schema["properties"][name]) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema["items"])] * max(1, schema.get("minItems", 0))
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return "x" * max(1, schema.get("minLength", 1))


OPERATIONS = [
    (method.upper(), path, operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if "{mailbox}" in path or any(p["name"] == "mailbox" for p in operation.get("parameters", []))
]


def request(method: str, path: str, operation: dict, box: str, ids_of: str) -> tuple[str, Any, dict]:
    """The operation on mailbox `box`, with the message, campaign and person of mailbox `ids_of`."""
    values = {"mailbox": box, "sha256": SHA[ids_of], "campaign_id": CAMPAIGN[ids_of],
              "username": PERSON[ids_of], "index": "0"}  # fmt: skip
    query = {
        p["name"]: box
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p["name"] == "mailbox"
    }
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return path.format(**values), example(schema) if schema else None, query


def _id(op: tuple) -> str:
    return f"{op[0]} {op[1]}"


def test_every_mailbox_operation_is_covered():
    assert len(OPERATIONS) >= 25, [_id(o) for o in OPERATIONS]


@pytest.mark.parametrize("op", OPERATIONS, ids=_id)
def test_an_admin_reaches_her_own_mailbox(op):
    method, path, operation = op
    app = world()
    if path.endswith(("/reply", "/forward")):  # a message in her own charge
        assert (
            call(
                app, "POST", f"/mailboxes/{BOX}/messages/{SHA[BOX]}/handling", body={"act": "take-in-charge"}
            )[0]
            == 200
        )
    url, body, query = request(method, path, operation, BOX, BOX)
    status, answer = call(app, method, url, body=body, query=query or None)
    assert status not in (403, 404, 422), (status, answer)


@pytest.mark.parametrize("op", OPERATIONS, ids=_id)
def test_another_mailbox_is_refused(op):
    method, path, operation = op
    app = world()
    url, body, query = request(method, path, operation, OTHER, OTHER)
    status, answer = call(app, method, url, body=body, query=query or None)
    assert status in (403, 404), (status, answer)
    assert OTHER not in json.dumps(answer).replace(f"{OTHER}", "", 1) or status == 404


@pytest.mark.parametrize(
    "op", [o for o in OPERATIONS if "{sha256}" in o[1] or "{campaign_id}" in o[1]], ids=_id
)
def test_another_mailboxs_ids_through_my_mailbox_are_not_found(op):
    method, path, operation = op
    app = world()
    url, body, query = request(method, path, operation, BOX, OTHER)
    status, answer = call(app, method, url, body=body, query=query or None)
    # a message's audit trail is read by mailbox and message: another mailbox's message has none here
    assert status in (403, 404) or (status == 200 and answer == []), (status, answer)


def test_people_answers_never_name_a_mailbox_i_have_no_role_on():
    """A person of another office, given a role on my mailbox, is shown with my mailbox's role only."""
    app = world()
    status, person = call(app, "PUT", f"/people/estraneo/roles/{BOX}", body={"role": "viewer"})
    assert status == 200 and person["roles"] == {BOX: "viewer"}, person
    status, listed = call(app, "GET", "/people", query={"mailbox": BOX})
    assert status == 200 and OTHER not in json.dumps(listed), listed
    status, person = call(app, "GET", "/me", user="estraneo")
    assert (
        status == 200 and set(json.dumps(person)) and OTHER in json.dumps(person)
    )  # their own roles, to them


def test_a_person_of_another_mailbox_cannot_be_disabled_by_me():
    app = world()
    status, answer = call(app, "POST", "/people/boss/disable")
    assert status in (403, 404), (status, answer)
    assert call(app, "GET", "/me", user="boss")[0] == 200
