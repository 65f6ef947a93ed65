"""GET /mailboxes/{mailbox}/messages/{sha256}/evidence on fakes: for every role that may read the
message a 5-minute link to its pack (left in the pack store), the act in the audit log; no role
404, no identity 401, no pack and no event left behind by a refusal."""

from __future__ import annotations

import contextlib
import io
import zipfile

import pytest

from pecflow.adapters.archive import sha256_hex
from pecflow.api import Services, build_app
from pecflow.domain import evidence as pack
from pecflow.domain.access import Role
from pecflow.services.audit import AuditLog
from pecflow.services.evidence import EvidencePacks
from pecflow.services.inbox import Inbox
from pecflow.services.people import PeopleAdmin
from tests import fakes
from tests.unit.test_api import BOX, RAW, call

SHA = sha256_hex(RAW)
PATH = f"/mailboxes/{BOX}/messages/{SHA}/evidence"


class Records:
    def __init__(self, key):
        self.key = key

    def get(self, mailbox, sha256):
        if sha256 != SHA:
            return None
        return {"sha256": sha256, "kind": "posta-ordinaria", "subject": "Pratica", "s3_key": self.key}


class Packs:
    def __init__(self):
        self.packs: dict[str, bytes] = {}

    @contextlib.contextmanager
    def writer(self, key):
        out = io.BytesIO()
        yield out
        self.packs[key] = out.getvalue()

    def link(self, key, filename):
        return f"https://downloads.test/{key}"


class Chunks:
    def __init__(self, archive):
        self.archive = archive

    def chunks(self, key):
        yield self.archive.get(key)


@pytest.fixture
def world():
    audit = fakes.FakeAuditStore()
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    rows = fakes.FakeInboxStore(audit)
    rows.add(
        BOX,
        {"sha256": SHA, "kind": "posta-ordinaria", "received_key": f"2026-11-20T09:00:00.000000Z#{SHA[:16]}"},
    )
    for name, role in (("nessuno", None), ("vera", Role.VIEWER), ("carla", Role.ADMIN)):
        people.add("test", name, f"{name}@alfa.test")
        if role:
            people.set_role("test", name, BOX, role)
    archive = fakes.FakeArchive()
    records = Records(archive.store(RAW).key)
    inbox = Inbox(rows, audit, store, records, cursor_secret=b"s" * 32, originals=archive)
    packs = Packs()
    evidence = EvidencePacks(records, AuditLog(audit), Chunks(archive), rows=rows, packs=packs)
    return build_app(Services(inbox, people, AuditLog(audit), evidence=evidence)), packs, audit


@pytest.mark.parametrize("user", ["vera", "carla"])
def test_who_may_read_the_message_gets_a_link_to_its_pack(world, user):
    app, packs, audit = world
    status, body = call(app, "GET", PATH, user=user)
    assert status == 200, body
    [(key, data)] = packs.packs.items()
    assert body == {"url": f"https://downloads.test/{key}", "filename": f"fascicolo-{SHA[:16]}.zip",
                    "files": body["files"], "timestamped": False, "expires_in": 300}  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read(pack.MESSAGE) == RAW and pack.TOKEN not in zf.namelist()  # no TSA configured here
    [event] = [e for e in audit.events(BOX) if e.action != "role-change"]
    assert (event.action, event.actor, event.message, event.source_ip) == ("evidence", user, SHA, "192.0.2.7")


@pytest.mark.parametrize(("user", "status"), [("nessuno", 404), (None, 401)])
def test_without_a_role_or_an_identity_nothing_is_built(world, user, status):
    app, packs, audit = world
    assert call(app, "GET", PATH, user=user)[0] == status
    assert call(app, "GET", f"/mailboxes/{BOX}/messages/{'0' * 64}/evidence", user="carla")[0] == 404
    assert packs.packs == {} and [e.action for e in audit.events(BOX) if e.action == "evidence"] == []
