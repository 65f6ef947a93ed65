"""Mailboxes administered through the API, on fakes: an admin adds one only after its IMAP and
SMTP logins work (a clear Italian sentence says which failed, and nothing is saved), becomes its
admin, and reads its health (last poll, last error, quota used in the window, messages da
gestire); nobody else may, and a mailbox that exists is never overwritten."""

from __future__ import annotations

import pytest

from pecflow.api import Services, build_app
from pecflow.domain.access import Role
from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.ports import MailboxUnavailable
from pecflow.domain.quota import sending_policy
from pecflow.services.audit import AuditLog
from pecflow.services.mailbox_desk import MailboxDesk
from pecflow.services.people import PeopleAdmin
from tests import fakes
from tests.unit.test_api import call

BOX = "ufficio@pec.alfa.test"
NEW = "fatture@pec.alfa.test"
NOW = 1_800_000_000.0


class Smtp:
    """The provider's SMTP login: the same accounts as its IMAP server, or down."""

    def __init__(self, imap: fakes.FakeImapServer):
        self.imap, self.down, self.logins = imap, False, []

    def open(self, config, password):
        self.logins.append(config.login)
        if self.down:
            raise MailboxUnavailable("unreachable", f"cannot reach {config.smtp_host}:{config.smtp_port}")
        account = self.imap.accounts.get(config.login.lower())
        if account is None or account.password != password:
            raise MailboxUnavailable("auth", f"SMTP login refused for {config.login}: 535 5.7.8")
        return self

    def close(self):
        pass


def world(messages: fakes.FakeMessageStore | None = None):
    audit = fakes.FakeAuditStore()
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    for name, role in (("carla", Role.ADMIN), ("marco", Role.MANAGER), ("vera", Role.VIEWER)):
        people.add("test", name, f"{name}@alfa.test")
        people.set_role("test", name, BOX, role)
    imap = fakes.FakeImapServer()
    imap.add_account(BOX, "vecchia")
    imap.add_account(NEW, "Giusta-2026", quota_kb=1000).append(b"Subject: x\r\n\r\nciao\r\n")
    smtp = Smtp(imap)
    mailboxes = fakes.FakeMailboxStore()
    secrets = fakes.FakeSecrets()
    limiter = fakes.FakeRateLimiter()
    to_handle = {BOX: 7}
    messages = messages if messages is not None else fakes.FakeMessageStore()
    desk = MailboxDesk(
        mailboxes, secrets, imap.open, smtp.open, people, AuditLog(audit), limiter.used,
        lambda mailbox: to_handle.get(mailbox, 0), stack_name="pecflow", now=lambda: NOW,
        quarantined=lambda mailbox, limit: messages.query(mailbox, index="Quarantined", limit=limit),
    )  # fmt: skip
    mailboxes.put(MailboxConfig(address=BOX, imap_host="imap.pec.alfa.test", quota_preset="legalmail"))
    app = build_app(Services(None, people, AuditLog(audit), mailboxes=desk))  # type: ignore[arg-type]
    return app, desk, imap, smtp, secrets, limiter, audit


BODY = {
    "address": NEW,
    "password": "Giusta-2026",
    "imap_host": "imap.pec.alfa.test",
    "quota_preset": "aruba",
    "saturation": {"mode": "after-days", "days": 120},
}


def test_an_admin_adds_a_mailbox_once_its_logins_work_and_becomes_its_admin():
    app, desk, imap, smtp, secrets, _, audit = world()
    status, added = call(app, "POST", "/mailboxes", body=BODY)
    assert status == 200, added
    assert added["mailbox"]["address"] == NEW and added["mailbox"]["smtp"] == "smtp.pec.alfa.test:465"
    assert added["messages"] == 1 and added["mailbox"]["saturation"] == "after-days"
    assert smtp.logins == [NEW]
    assert secrets.secrets["pecflow/mailbox/" + NEW][0] == "Giusta-2026"
    config = desk.mailboxes.get(NEW)
    assert config is not None and config.secret_id == "pecflow/mailbox/" + NEW
    assert config.saturation.days == 120
    assert "Giusta-2026" not in str(desk.mailboxes.items)  # the password is in the secret only
    assert desk.people.store.person("carla").roles[NEW] is Role.ADMIN
    assert [e.action for e in audit.events(NEW)][:1] == ["rules-change"]
    listed = call(app, "GET", "/mailboxes")[1]
    assert [m["address"] for m in listed] == [NEW, BOX]
    assert call(app, "GET", "/mailboxes", user="marco") == (200, [])


@pytest.mark.parametrize(
    ("breaks", "step", "says"),
    [
        (
            "imap-password",
            "imap",
            "Il server di ricezione (IMAP) ha rifiutato l'accesso di fatture@pec.alfa.test",
        ),
        ("imap-down", "imap", "Il server di ricezione (IMAP) (imap.pec.alfa.test:993) non risponde"),
        ("smtp-down", "smtp", "Il server di invio (SMTP) (smtp.pec.alfa.test:465) non risponde"),
    ],
)
def test_a_failed_login_says_which_server_and_why_and_nothing_is_saved(breaks, step, says):
    app, desk, imap, smtp, secrets, _, _ = world()
    body = dict(BODY)
    if breaks == "imap-password":
        body["password"] = "sbagliata"
    imap.unreachable = breaks == "imap-down"
    smtp.down = breaks == "smtp-down"
    status, problem = call(app, "POST", "/mailboxes", body=body)
    assert status == 400 and problem["code"] == "login-failed" and problem["step"] == step
    assert problem["message"].startswith(f"Casella non aggiunta: {says}")
    assert "Nulla è stato salvato" in problem["message"] and "dettaglio tecnico" in problem["message"]
    assert desk.mailboxes.get(NEW) is None and not secrets.secrets
    assert NEW not in desk.people.store.person("carla").roles


def test_only_an_admin_adds_and_an_existing_mailbox_is_never_overwritten():
    app, desk, *_ = world()
    status, problem = call(app, "POST", "/mailboxes", user="marco", body=BODY)
    assert status == 403 and problem["code"] == "forbidden"
    status, problem = call(app, "POST", "/mailboxes", body={**BODY, "address": BOX.upper()})
    assert status == 409 and "già configurata" in problem["message"]
    assert desk.mailboxes.get(BOX).quota_preset == "legalmail"
    status, problem = call(app, "POST", "/mailboxes", body={**BODY, "quota_preset": "veloce"})
    assert status == 400 and "veloce" in problem["message"]
    status, problem = call(app, "POST", "/mailboxes", body={**BODY, "saturation": {"mode": "above-quota"}})
    assert status == 400 and "expunge" in problem["message"]


def test_the_health_of_a_mailbox_for_its_admin_only():
    app, desk, _, _, _, limiter, _ = world()
    desk.mailboxes.record_poll(BOX, ok=False, error_kind="auth", error="login refused",
                               usage={"used_kb": 500, "limit_kb": 1000, "percent": 50.0})  # fmt: skip
    policy = sending_policy("legalmail")  # 6 a minute, rolling
    limiter.policy_for = lambda mailbox: policy
    for t in (NOW - 90, NOW - 30, NOW - 10):  # one outside the window
        limiter.acquire(BOX, t)
    status, health = call(app, "GET", f"/mailboxes/{BOX}/health")
    assert status == 200, health
    assert health["quota"] == {"used": 2, "limit": 6, "window": "6 per minute rolling", "window_seconds": 60.0,
                               "rolling": True, "timezone": None}  # fmt: skip
    assert health["to_handle"] == 7 and health["error_kind"] == "auth"
    assert health["mailbox"]["last_error"] == "login refused" and health["space_used_percent"] == 50.0
    assert health["consecutive_failures"] == 1
    assert call(app, "GET", f"/mailboxes/{BOX}/health", user="marco")[0] == 403
    assert call(app, "GET", f"/mailboxes/{NEW}/health")[0] == 404  # no role there: not told it exists


def _held(messages, sha: str, at: str, stage: str, reason: str, **fields) -> None:
    messages.record(BOX, {"sha256": sha, "kind": "posta-certificata", "received_at": at,
                          "received_key": f"{at}#{sha[:16]}", **fields})  # fmt: skip
    messages.set_fields(BOX, sha, {"quarantined": {"stage": stage, "reason": reason, "at": at},
                                   "quarantined_mailbox": BOX})  # fmt: skip


def test_the_quarantine_lists_the_held_messages_newest_first_with_why_for_admins_only():
    messages = fakes.FakeMessageStore()  # what the poller recorded
    app, *_ = world(messages)
    messages.record(BOX, {"sha256": "c" * 64, "kind": "posta-certificata", "received_at": "2026-03-03T10:00:00Z",
                          "received_key": "2026-03-03T10:00:00Z#" + "c" * 16})  # fmt: skip  # not held
    _held(messages, "a" * 64, "2026-03-01T09:00:00Z", "rules", "regola «formati»: allegato .exe non ammesso",
          sender="fornitore@pec.beta.test", original_subject="Fattura 12")  # fmt: skip
    _held(messages, "b" * 64, "2026-03-02T09:00:00Z", "classify", "ValueError: header non leggibile")
    status, held = call(app, "GET", f"/mailboxes/{BOX}/quarantine")
    assert status == 200, held
    assert [h["sha256"] for h in held] == ["b" * 64, "a" * 64]
    assert held[1] | {} == {
        "sha256": "a" * 64, "received_at": "2026-03-01T09:00:00Z", "kind": "posta-certificata",
        "sender": "fornitore@pec.beta.test", "subject": "Fattura 12", "stage": "rules",
        "reason": "regola «formati»: allegato .exe non ammesso", "at": "2026-03-01T09:00:00Z", "uid": None,
    }  # fmt: skip
    assert call(app, "GET", f"/mailboxes/{BOX}/quarantine", user="marco")[0] == 403
    assert call(app, "GET", f"/mailboxes/{NEW}/quarantine")[0] == 404
