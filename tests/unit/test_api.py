"""The API on fakes, with API Gateway HTTP API (v2) events as the JWT authorizer passes them:
every route × every role (allowed, forbidden 403, invisible 404), no identity 401, a disabled
person refused, errors as JSON with a message, the OpenAPI document."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from local.pecbuild.builder import messaggio_originale
from pecflow.api import Services, build_app
from pecflow.api.app import openapi_document
from pecflow.domain.access import Role
from pecflow.domain.mailbox import MailboxConfig
from pecflow.services.admin import CampaignAdmin
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import CampaignDesk
from pecflow.services.inbox import Inbox
from pecflow.services.mailbox_desk import MailboxDesk
from pecflow.services.people import PeopleAdmin
from tests import fakes

BOX = "ufficio@pec.alfa.test"
SHA = f"{1:064x}"
ROLES = [None, Role.VIEWER, Role.OPERATOR, Role.MANAGER, Role.ADMIN]


RAW = messaggio_originale(
    mittente="cliente@pec.beta.test", destinatari=[BOX], oggetto="Pratica", testo="Buongiorno\n",
    allegati=[("preventivo.pdf", "application/pdf", b"%PDF-1.7 ...")], data=datetime(2026, 11, 20, tzinfo=UTC),
)  # fmt: skip


class Records:
    def __init__(self, key):
        self.key = key

    def get(self, mailbox, sha256):
        return {"sha256": sha256, "subject": "Pratica", "from": "cliente@pec.beta.test", "message_id": "<m@x>",
                "s3_key": self.key}  # fmt: skip


def world():
    audit = fakes.FakeAuditStore()
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    rows = fakes.FakeInboxStore(audit)
    for i in range(3):
        rows.add(BOX, {"sha256": f"{i:064x}", "kind": "posta-certificata", "subject": f"Pratica {i}",
                       "received_key": f"2026-11-2{i}T09:00:00.000000Z#{i:016x}"})  # fmt: skip
    for name, role in (("nessuno", None), ("vera", Role.VIEWER), ("otto", Role.OPERATOR),
                       ("marco", Role.MANAGER), ("carla", Role.ADMIN), ("collega", Role.OPERATOR)):  # fmt: skip
        people.add("test", name, f"{name}@alfa.test")
        if role:
            people.set_role("test", name, BOX, role)
    outgoing = fakes.FakeOutgoingStore(fakes.FakeCampaignStore())
    archive = fakes.FakeArchive()
    inbox = Inbox(
        rows, audit, store, Records(archive.store(RAW).key), cursor_secret=b"s" * 32, outbox=outgoing,
        send_queue=fakes.FakeQueue(), originals=archive,
    )  # fmt: skip
    campaigns = fakes.FakeCampaignStore()
    campaigns.create("solleciti", {"status": "sending", "mailbox": BOX})
    campaigns.create("altrui", {"status": "sending", "mailbox": "altro@pec.alfa.test"})
    desk = CampaignDesk(
        CampaignAdmin(
            campaigns=campaigns, outgoing=outgoing, send_queue=fakes.FakeQueue(), audit=AuditLog(audit)
        ),
        fakes.FakeUploads(),
        AuditLog(audit),
    )
    mailboxes = fakes.FakeMailboxStore()
    mailboxes.put(MailboxConfig(address=BOX, imap_host="imap.pec.alfa.test"))
    provider = fakes.FakeImapServer()  # knows no mailbox: every login check is refused
    boxes = MailboxDesk(
        mailboxes, fakes.FakeSecrets(), provider.open, provider.open, people, AuditLog(audit),
        fakes.FakeRateLimiter().used, lambda mailbox: 0, stack_name="pecflow",
    )  # fmt: skip
    return build_app(Services(inbox, people, AuditLog(audit), desk, mailboxes=boxes)), people


def event(method: str, path: str, *, user: str | None, body=None, query=None) -> dict:
    context = {
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.7",
                 "userAgent": "pytest"},
        "requestId": "req", "routeKey": "$default", "stage": "$default",
        "time": "26/Nov/2026:09:00:00 +0000", "timeEpoch": 1795683600000,
    }  # fmt: skip
    if user is not None:
        context["authorizer"] = {
            "jwt": {"claims": {"cognito:username": user, "token_use": "id"}, "scopes": None}
        }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "queryStringParameters": query,
        "headers": {"user-agent": "pytest", "content-type": "application/json"},
        "requestContext": context,
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def call(app, method, path, *, user="carla", body=None, query=None):
    """(status, the answer: JSON read, other content (a CSV export) as its text, None if empty)."""
    response = app.resolve(event(method, path, user=user, body=body, query=query), None)
    text = response.get("body")
    if not text:
        return response["statusCode"], None
    kind = str((response.get("headers") or {}).get("Content-Type") or "application/json")
    return response["statusCode"], json.loads(text) if "json" in kind else text


M = f"/mailboxes/{BOX}"
# (name, method, path, body, query, the least role allowed)
ROUTES = [
    ("list", "GET", f"{M}/messages", None, None, Role.VIEWER),
    ("bin", "GET", f"{M}/messages", None, {"bin": "true"}, Role.ADMIN),
    ("show", "GET", f"{M}/messages/{SHA}", None, None, Role.VIEWER),
    ("trail", "GET", f"{M}/messages/{SHA}/audit", None, None, Role.VIEWER),
    ("download", "GET", f"{M}/messages/{SHA}/download", None, None, Role.VIEWER),
    ("file", "GET", f"{M}/messages/{SHA}/files/0", None, None, Role.VIEWER),
    ("take", "POST", f"{M}/messages/{SHA}/handling", {"act": "take-in-charge"}, None, Role.OPERATOR),
    (
        "handled",
        "POST",
        f"{M}/messages/{SHA}/handling",
        {"act": "mark-handled", "note": "ok"},
        None,
        Role.OPERATOR,
    ),
    (
        "assign",
        "POST",
        f"{M}/messages/{SHA}/handling",
        {"act": "assign", "to": "collega"},
        None,
        Role.MANAGER,
    ),
    ("delete", "POST", f"{M}/messages/{SHA}/delete", {"reason": "doppione"}, None, Role.ADMIN),
    ("restore", "POST", f"{M}/messages/{SHA}/restore", None, None, Role.ADMIN),
    ("verify", "GET", f"{M}/audit/verify", None, None, Role.ADMIN),
    ("reply", "POST", f"{M}/messages/{SHA}/reply", {"text": "Gentile cliente, ..."}, None, Role.OPERATOR),
    (
        "forward",
        "POST",
        f"{M}/messages/{SHA}/forward",
        {"to": "legale@pec.alfa.test", "text": "Per competenza"},
        None,
        Role.OPERATOR,
    ),  # fmt: skip
    ("campaigns", "GET", f"{M}/campaigns", None, None, Role.MANAGER),
    ("campaign", "GET", f"{M}/campaigns/solleciti", None, None, Role.MANAGER),
    ("campaign-action", "POST", f"{M}/campaigns/solleciti/actions", {"action": "pause"}, None, Role.MANAGER),
    ("campaign-export", "GET", f"{M}/campaigns/solleciti/export", None, None, Role.MANAGER),
    ("campaign-recipients", "GET", f"{M}/campaigns/solleciti/recipients", None, None, Role.MANAGER),
    (
        "campaign-failed",
        "GET",
        f"{M}/campaigns/solleciti/recipients",
        None,
        {"state": "failed"},
        Role.MANAGER,
    ),
    (
        "upload-links",
        "POST",
        f"{M}/campaigns/nuova/upload-links",
        {"files": ["recipients.csv"]},
        None,
        Role.MANAGER,
    ),
    ("people", "GET", "/people", None, {"mailbox": BOX}, Role.ADMIN),
    ("grant", "PUT", f"/people/collega/roles/{BOX}", {"role": "viewer"}, None, Role.ADMIN),
    ("disable", "POST", "/people/collega/disable", None, None, Role.ADMIN),
]
USER_OF = {
    None: "nessuno",
    Role.VIEWER: "vera",
    Role.OPERATOR: "otto",
    Role.MANAGER: "marco",
    Role.ADMIN: "carla",
}
RANK = {None: 0, Role.VIEWER: 1, Role.OPERATOR: 2, Role.MANAGER: 3, Role.ADMIN: 4}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "no-role")
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r[0])
def test_every_route_for_every_role(route, role):
    app, _ = world()
    name, method, path, body, query, least = route
    if name in ("reply", "forward") and RANK[role] >= RANK[Role.OPERATOR]:  # only in your own charge
        take = {"act": "take-in-charge"}
        assert call(app, "POST", f"{M}/messages/{SHA}/handling", user=USER_OF[role], body=take)[0] == 200
    status, payload = call(app, method, path, user=USER_OF[role], body=body, query=query)
    if RANK[role] >= RANK[least]:
        assert status == 200, payload
    elif role is None and (BOX in path or BOX in (query or {}).values()):
        assert status == 404 and "not found" in payload["message"]  # never told the mailbox exists
    else:
        assert status == 403 and payload["code"] == "forbidden", payload


def test_no_identity_is_401_and_an_unknown_or_disabled_person_refused():
    app, people = world()
    assert call(app, "GET", "/me", user=None)[0] == 401
    assert call(app, "GET", "/me", user="sconosciuto") == (401, {"message": "sconosciuto has no pecflow account",
                                                                  "code": "unauthenticated"})  # fmt: skip
    people.set_enabled("test", "otto", False)
    status, payload = call(app, "GET", f"{M}/messages", user="otto")
    assert status == 403 and payload["code"] == "disabled"


def test_me_lists_my_mailboxes_and_roles():
    app, _ = world()
    status, me = call(app, "GET", "/me", user="marco")
    assert status == 200 and me["mailboxes"] == [{"mailbox": BOX, "role": "manager"}]


def test_the_loser_of_a_take_in_charge_gets_409_with_the_holder():
    app, _ = world()
    assert (
        call(app, "POST", f"{M}/messages/{SHA}/handling", user="otto", body={"act": "take-in-charge"})[0]
        == 200
    )
    status, payload = call(
        app, "POST", f"{M}/messages/{SHA}/handling", user="collega", body={"act": "take-in-charge"}
    )
    assert status == 409 and payload["code"] == "held-by-other" and payload["holder"] == "otto"
    assert datetime.fromisoformat(payload["since"]).tzinfo is not None


def test_bad_requests_say_what_is_wrong_in_json():
    app, _ = world()
    status, payload = call(app, "POST", f"{M}/messages/{SHA}/handling", user="otto", body={"act": "leggi"})
    assert status == 422 and "act" in payload["message"] and payload["code"] == "invalid-request"
    status, payload = call(app, "GET", f"{M}/messages", user="vera", query={"cursor": "rotto"})
    assert status == 400 and "start the list again" in payload["message"]
    status, payload = call(app, "GET", f"{M}/messages", user="vera", query={"kind": "spam"})
    assert status == 400 and "unknown kind" in payload["message"]
    status, payload = call(app, "GET", "/nowhere", user="vera")
    assert status == 404 and payload["code"] == "not-found"
    status, payload = call(app, "POST", f"{M}/messages/{SHA}/delete", user="carla", body={})
    assert status == 422 and "reason" in payload["message"]


def test_a_page_and_its_cursor_through_the_api():
    app, _ = world()
    status, first = call(app, "GET", f"{M}/messages", user="vera", query={"size": "2"})
    assert status == 200 and len(first["messages"]) == 2 and first["cursor"]
    status, second = call(
        app, "GET", f"{M}/messages", user="vera", query={"size": "2", "cursor": first["cursor"]}
    )
    assert status == 200 and len(second["messages"]) == 1 and second["cursor"] is None


def test_the_openapi_document_is_served_and_lists_the_routes():
    app, _ = world()
    status, document = call(app, "GET", "/openapi.json", user=None)
    assert status == 200 and document["info"]["title"] == "pecflow"
    paths = document["paths"]
    assert {
        "/mailboxes/{mailbox}/messages",
        "/mailboxes/{mailbox}/messages/{sha256}/handling",
        "/people",
        "/me",
    } <= set(paths)
    assert json.loads(openapi_document(app)) == document


def test_the_published_openapi_document_is_current():
    from pathlib import Path

    from pecflow.api.__main__ import document

    published = Path(__file__).resolve().parents[2] / "openapi.json"
    assert published.read_text() == document(), "regenerate it: python -m pecflow.api > openapi.json"


def test_a_reply_to_a_message_someone_else_holds_is_409():
    app, _ = world()
    call(app, "POST", f"{M}/messages/{SHA}/handling", user="otto", body={"act": "take-in-charge"})
    status, payload = call(app, "POST", f"{M}/messages/{SHA}/reply", user="collega", body={"text": "io"})
    assert status == 409 and payload["holder"] == "otto"
    status, payload = call(app, "POST", f"{M}/messages/{SHA}/reply", user="otto", body={"text": "io"})
    assert status == 200 and payload["message_id"].startswith("<pecflow.reply.")


def test_a_percent_encoded_mailbox_in_the_path_is_the_same_mailbox():
    app, _ = world()
    status, page = call(app, "GET", "/mailboxes/ufficio%40pec.alfa.test/messages", user="vera")
    assert status == 200 and len(page["messages"]) == 3


# --- what the fuzz (tests/integration/test_api_fuzz.py) found -------------------------------------
def _raw(app, method, path, *, body: str | None, content_type: str | None, encoded=False, user="carla"):
    sent = event(method, path, user=user)
    sent["headers"] = {"user-agent": "pytest", **({"content-type": content_type} if content_type else {})}
    sent["body"], sent["isBase64Encoded"] = body, encoded
    response = app.resolve(sent, None)
    return response["statusCode"], response["headers"], json.loads(response["body"])


@pytest.mark.parametrize(
    "content_type, body",
    [
        pytest.param("multipart/form-data", "", id="multipart-without-boundary"),  # was a 500
        pytest.param("multipart/form-data; boundary=x", "--x\r\n\r\n--x--", id="multipart"),
        pytest.param("application/x-www-form-urlencoded", "act=take-in-charge", id="form"),
        pytest.param("text/plain", '{"act": "take-in-charge"}', id="text"),  # was a body without a message
    ],
)
def test_a_body_that_is_not_json_is_refused_with_415_and_a_message(content_type, body):
    app, _ = world()
    status, _, payload = _raw(
        app, "POST", f"{M}/messages/{SHA}/handling", body=body, content_type=content_type
    )
    assert status == 415 and payload["code"] == "not-json" and "as JSON" in payload["message"]


def test_json_in_any_case_of_its_content_type_is_json():
    app, _ = world()
    status, _, held = _raw(app, "POST", f"{M}/messages/{SHA}/handling", body='{"act": "take-in-charge"}',
                           content_type="Application/JSON; charset=UTF-8", user="otto")  # fmt: skip
    assert status == 200 and held["holder"] == "otto"


def test_a_body_that_is_not_utf8_is_400_not_500():
    app, _ = world()
    garbage = base64.b64encode(b"\x87\x86\xff").decode()
    status, _, payload = _raw(app, "PUT", f"/people/collega/roles/{BOX}", body=garbage,
                              content_type="application/json", encoded=True)  # fmt: skip
    assert status == 400 and "not even UTF-8" in payload["message"]


def test_a_known_address_with_another_method_is_405_with_allow():
    app, _ = world()
    status, headers, payload = _raw(app, "DELETE", f"{M}/messages/{SHA}", body=None, content_type=None)
    assert status == 405 and headers["Allow"] == "GET" and "does not take DELETE" in payload["message"]
    assert call(app, "DELETE", "/nowhere")[0] == 404


def test_odd_path_parameters_are_422_not_a_lookup():
    app, _ = world()
    status, payload = call(app, "GET", f"{M}/messages/{'A' * 64}")
    assert status == 422 and "sha256" in payload["message"]
    status, payload = call(app, "POST", f"/people/{'x' * 64}/disable")
    assert status == 422 and "username" in payload["message"]
    status, payload = call(app, "POST", "/people", body={"username": "è strano", "email": "a@b.test"})
    assert status == 422 and "username" in payload["message"]


def test_an_unknown_person_is_404():
    app, _ = world()
    status, payload = call(app, "POST", "/people/zeno/disable")
    assert status == 404 and payload == {"message": "there is no person called zeno", "code": "not-found"}


def test_the_document_declares_every_error_as_the_json_the_api_answers():
    document = json.loads(openapi_document(world()[0]))
    assert document["security"] == [{"cognito": []}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"200", "401", "403", "422"} <= set(responses), (method, path)
            for status, declared in responses.items():
                if status != "200":
                    schema = declared["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                    assert schema == ("Unauthorized" if status == "401" else "Problem"), (
                        method,
                        path,
                        status,
                    )
    assert document["components"]["schemas"]["Problem"]["required"] == ["message", "code"]


def test_campaigns_of_a_mailbox_through_the_api():
    app, _ = world()
    status, page = call(app, "GET", f"{M}/campaigns", user="marco")
    assert status == 200 and [c["campaign_id"] for c in page["campaigns"]] == ["solleciti"]
    assert call(app, "GET", f"{M}/campaigns/altrui", user="marco")[0] == 404  # another mailbox's
    status, links = call(app, "POST", f"{M}/campaigns/nuova/upload-links", user="marco",
                         body={"files": ["recipients.csv", "attachments/condizioni.pdf"]})  # fmt: skip
    assert status == 200 and set(links["links"]) == {"recipients.csv", "attachments/condizioni.pdf"}
    status, refused = call(app, "POST", f"{M}/campaigns/nuova/upload-links", user="marco",
                           body={"files": ["../manifest.json"]})  # fmt: skip
    assert status == 400 and "not a campaign file" in refused["message"]
    manifest = {"mailbox": "altro@pec.alfa.test", "subject": "Avviso", "body_text": "Gentile cliente"}
    status, refused = call(
        app, "POST", f"{M}/campaigns/nuova/manifest", user="marco", body={"manifest": manifest}
    )
    assert status == 400 and "sends from ufficio@pec.alfa.test" in refused["message"]
    manifest = {**manifest, "mailbox": BOX, "purpose": "avvisi di scadenza"}
    assert (
        call(app, "POST", f"{M}/campaigns/nuova/manifest", user="marco", body={"manifest": manifest})[0]
        == 200
    )
    status, refused = call(
        app, "POST", f"{M}/campaigns/solleciti/manifest", user="marco", body={"manifest": manifest}
    )
    assert status == 409 and "runs once" in refused["message"]
    assert (
        call(app, "POST", f"{M}/campaigns/solleciti/actions", user="marco", body={"action": "pause"})[0]
        == 200
    )
    status, again = call(
        app, "POST", f"{M}/campaigns/solleciti/actions", user="marco", body={"action": "pause"}
    )
    assert status == 409 and "cannot pause" in again["message"]
    status, trail = call(app, "GET", f"{M}/audit/verify", user="carla")
    assert status == 200 and trail["whole"]


def test_a_message_opened_through_the_api_says_what_it_says_and_links_its_files():
    app, _ = world()
    status, shown = call(app, "GET", f"{M}/messages/{SHA}", user="vera")
    assert status == 200 and shown["content"]["text"] == "Buongiorno\n"
    assert [f["filename"] for f in shown["content"]["files"]] == ["preventivo.pdf"]
    status, link = call(app, "GET", f"{M}/messages/{SHA}/files/0", user="vera")
    assert status == 200 and link["url"].startswith("https://downloads.test/files/") and link["size"] == 12
    status, payload = call(app, "GET", f"{M}/messages/{SHA}/files/3", user="vera")
    assert status == 404 and "no file number 3" in payload["message"]
    assert call(app, "GET", f"{M}/messages/{SHA}/files/-1", user="vera")[0] == 422


def test_the_recipients_of_a_campaign_through_the_api():
    app, _ = world()
    status, page = call(app, "GET", f"{M}/campaigns/solleciti/recipients", user="marco")
    assert status == 200 and page == {"recipients": [], "cursor": None, "read": 0}
    status, refused = call(app, "GET", f"{M}/campaigns/solleciti/recipients", user="marco",
                           query={"state": "spam"})  # fmt: skip
    assert status == 422 and "state" in refused["message"]
    status, refused = call(app, "GET", f"{M}/campaigns/solleciti/recipients", user="marco",
                           query={"cursor": "rotto"})  # fmt: skip
    assert status == 400 and "start the list again" in refused["message"]
    status, refused = call(app, "GET", f"{M}/campaigns/altrui/recipients", user="marco")
    assert status == 404 and refused["code"] == "not-found"
