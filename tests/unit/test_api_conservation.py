"""/mailboxes/{mailbox}/conservation-exports on fakes: an administrator of the mailbox exports a
period (a 5-minute link to the package left in the store, the period recorded, the act audited)
and lists the exported periods; an overlapping period is refused (400, naming it), the next one
made with from_last_export; a viewer 403, no role 404, no identity 401, nothing built by a refusal."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from pecflow.api import Services, build_app
from pecflow.domain import conservation as pdv
from pecflow.domain.access import Role
from pecflow.services.audit import AuditLog
from pecflow.services.inbox import Inbox
from pecflow.services.people import PeopleAdmin
from tests import fakes
from tests.unit.test_api import call
from tests.unit.test_conservation import BOX, world  # noqa: F401 - the fixture

PATH = f"/mailboxes/{BOX}/conservation-exports"


@pytest.fixture
def api(world):  # noqa: F811 - the fixture imported above
    service, _, _, periods, audit, _, _ = world
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    for name, role in (("nessuno", None), ("vera", Role.VIEWER), ("carla", Role.ADMIN)):
        people.add("test", name, f"{name}@alfa.test")
        if role:
            people.set_role("test", name, BOX, role)
    inbox = Inbox(
        fakes.FakeInboxStore(audit), audit, store, fakes.FakeMessageStore(), cursor_secret=b"s" * 32
    )
    app = build_app(Services(inbox, people, AuditLog(audit), conservation=service))
    return app, service.packages, periods, audit


def test_an_administrator_exports_a_period_and_lists_it(api):
    app, packages, periods, audit = api
    status, body = call(app, "POST", PATH, user="carla", body={"first": "2026-11-01", "last": "2026-11-15"})
    assert status == 200, body
    [(key, data)] = packages.packages.items()
    assert body["url"] == f"https://downloads.test/{key}?as={body['filename']}" and body["expires_in"] == 300
    assert (body["first"], body["last"], body["documents"]) == ("2026-11-01", "2026-11-15", 4)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert pdv.schema_errors(zf.read(pdv.INDEX), pdv.INDEX_SCHEMA) == []
    [event] = [e for e in audit.events(BOX) if e.action == "conservation-export"]
    assert (event.actor, event.source_ip) == ("carla", "192.0.2.7")

    status, refused = call(
        app, "POST", PATH, user="carla", body={"first": "2026-11-15", "last": "2026-11-20"}
    )
    assert status == 400 and "già esportato 2026-11-01 – 2026-11-15" in refused["message"]
    status, body = call(
        app, "POST", PATH, user="carla", body={"last": "2026-11-20", "from_last_export": True}
    )
    assert status == 200 and (body["first"], body["documents"]) == ("2026-11-16", 0)
    status, listed = call(app, "GET", PATH, user="carla")
    assert status == 200 and [(p["first"], p["last"]) for p in listed["periods"]] == [
        ("2026-11-01", "2026-11-15"), ("2026-11-16", "2026-11-20"),
    ]  # fmt: skip
    assert listed["gaps"] == [] and listed["periods"][0]["created_by"] == "carla"


@pytest.mark.parametrize(("user", "status"), [("vera", 403), ("nessuno", 404), (None, 401)])
def test_no_one_else_exports_or_lists(api, user, status):
    app, packages, periods, audit = api
    assert call(app, "POST", PATH, user=user, body={"first": "2026-11-01", "last": "2026-11-15"})[0] == status
    assert call(app, "GET", PATH, user=user)[0] == status
    assert packages.packages == {} and not periods.items
    assert [e for e in audit.events(BOX) if e.action == "conservation-export"] == []


def test_a_period_not_over_or_badly_asked_is_refused_in_words(api):
    app, packages, _, _ = api
    status, refused = call(
        app, "POST", PATH, user="carla", body={"first": "2026-11-20", "last": "2026-11-26"}
    )
    assert status == 400 and "non è concluso" in refused["message"]
    status, refused = call(app, "POST", PATH, user="carla", body={"last": "2026-11-20"})
    assert status == 400 and "--from" in refused["message"]
    assert call(app, "POST", PATH, user="carla", body={"first": "ieri", "last": "2026-11-20"})[0] == 422
    assert packages.packages == {}
