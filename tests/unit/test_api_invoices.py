"""/mailboxes/{mailbox}/invoices on fakes: listed with filters (viewers), exported as CSV, an
active invoice sent (operators), unmatched notifications listed, clear refusals."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from local.pecbuild import sdi_builder
from pecflow.api import Services, build_app
from pecflow.domain.access import Role
from pecflow.services.audit import AuditLog
from pecflow.services.inbox import Inbox
from pecflow.services.invoices import InvoiceDesk, InvoiceLedger
from pecflow.services.people import PeopleAdmin
from tests import fakes
from tests.unit.test_api import call, event

BOX = "ufficio@pec.alfa.test"
PATH = f"/mailboxes/{BOX}/invoices"
NOI = sdi_builder.Parte("IT", "01234567890", "Alfa S.p.A.")
CLIENTE = sdi_builder.Parte("IT", "09876543210", "@Cliente S.r.l.")
WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def world():
    audit = fakes.FakeAuditStore()
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    for name, role in (("vera", Role.VIEWER), ("otto", Role.OPERATOR)):
        people.add("test", name, f"{name}@alfa.test")
        people.set_role("test", name, BOX, role)
    inbox = Inbox(fakes.FakeInboxStore(audit), audit, store, None, cursor_secret=b"s" * 32)
    items, queue = fakes.FakeInvoiceStore(), fakes.FakeQueue()
    desk = InvoiceDesk(
        InvoiceLedger(items, fakes.FakeInvoiceFiles()), outbox=fakes.FakeOutgoingStore(), send_queue=queue,
        archive=fakes.FakeArchive(), mailbox_of={BOX: fakes.config(BOX)}.get,
    )  # fmt: skip
    app = build_app(Services(inbox, people, AuditLog(audit), invoices=desk))
    return app, items, queue


def invoice(progressivo: str = "00001", numero: str = "1") -> tuple[str, str]:
    doc = sdi_builder.Documento(numero, "2026-02-27", "122.00")
    xml = sdi_builder.fattura(NOI, CLIENTE, [doc], progressivo=progressivo)
    return sdi_builder.nome_fattura(NOI, progressivo), base64.b64encode(xml).decode()


def test_an_operator_sends_and_a_viewer_lists_and_exports(world):
    app, items, queue = world
    name, content = invoice()
    status, body = call(app, "POST", PATH, user="otto", body={"filename": name, "content_base64": content})
    assert (
        status == 200
        and body["new"]
        and body["state"] == "inviata"
        and body["to"] == "sdi01@pec.fatturapa.it"
    )
    assert len(queue.sent) == 1
    again = call(app, "POST", PATH, user="otto", body={"filename": name, "content_base64": content})
    assert again[1]["new"] is False and again[1]["message_id"] == body["message_id"]
    status, listed = call(app, "GET", PATH, user="vera", query={"direction": "active", "from": "2026-01-01"})
    assert status == 200 and listed["count"] == 1 and listed["invoices"][0]["nome_file"] == name
    assert call(app, "GET", PATH, user="vera", query={"from": "2027-01-01"})[1]["count"] == 0
    response = app.resolve(event("GET", f"{PATH}/export", user="vera"), None)
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"].startswith("text/csv")
    assert "'@Cliente S.r.l." in response["body"], "formula defused"
    assert call(app, "GET", f"{PATH}/unmatched", user="vera") == (200, {"mailbox": BOX, "notifications": []})


def test_a_viewer_cannot_send_and_bad_requests_are_explained(world):
    app, items, queue = world
    name, content = invoice("00002")
    assert call(app, "POST", PATH, user="vera", body={"filename": name, "content_base64": content})[0] == 403
    status, body = call(
        app, "POST", PATH, user="otto", body={"filename": "fattura.xml", "content_base64": content}
    )
    assert status == 400 and "non è quello di una fattura SdI" in body["message"]
    status, body = call(app, "POST", PATH, user="otto", body={"filename": name, "content_base64": "%%%%"})
    assert status == 400 and "base64" in body["message"]
    status, body = call(app, "GET", PATH, user="vera", query={"state": "pagata"})
    assert status == 400 and "pagata" in body["message"]
    assert call(app, "GET", "/mailboxes/altra@pec.alfa.test/invoices", user="vera")[0] == 404
    assert queue.sent == [] and list(items.invoices(BOX)) == []
