"""One cell's world on the shared stack, and the five invariant checks every cell ends with.

A world is a company (office mailbox on provider `alfa-<tag>`, reached through two TCP proxies:
IMAP in front of Dovecot, SMTPS in front of its access point), three correspondents on provider
`beta-<tag>`, and an operator with a sign-in token. It starts with one certified message from a
correspondent in the office's box. What the cell does is noted on it: campaign recipients (to
receive exactly one message, or none when refused), the audit acts expected, and the errors the
user saw while the fault lasted.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import smtplib
from collections import Counter
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from local.api_server import json_request
from local.faults import TcpProxy
from local.imap import Account
from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb import MailboxStore, MessageStore
from pecflow.domain.mailbox import Saturation, SaturationPolicy
from pecflow.pec import kinds
from tests.e2e.test_campaigns import received_by, settle, upload

POLL = 5 * 60
_SEQ = itertools.count(1)
HELD, BROKEN, NONE = "✓", "✗", "–"


@dataclass
class World:
    stack: object
    tag: str
    alfa: object
    beta: object
    office: Account
    clients: list[Account]
    imap: TcpProxy
    smtp: TcpProxy
    token: str
    boundary: str = ""
    fault: str = ""
    order: int = 0
    once: set[str] = field(default_factory=set)  # recipients that must get exactly one message
    never: set[str] = field(default_factory=set)  # recipients that must get none (refused)
    audit_before: Counter = field(default_factory=Counter)
    audit_expected: Counter = field(default_factory=Counter)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (where, what the user saw)
    expect_seen: list[tuple[str, str]] = field(default_factory=list)  # (where, words it must hold)
    checks: dict[str, str] = field(default_factory=dict)
    first_invocation: int = 0

    # --- making one ------------------------------------------------------------------------------
    @classmethod
    def make(cls, stack, name: str) -> World:
        tag = f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')[:30]}-{next(_SEQ)}"
        net = stack.network
        alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", f"pec.alfa-{tag}.test"))
        beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", f"pec.beta-{tag}.test"))
        office = alfa.add_mailbox(f"ufficio@pec.alfa-{tag}.test")
        imap = TcpProxy(stack.dovecot.host, stack.dovecot.port).start()
        smtp = TcpProxy(alfa.host, alfa.port).start()
        # every message leaves the provider once archived and verified (usage above 0.0001% of the
        # quota): the expunge path runs in every cell
        expunge = SaturationPolicy(Saturation.ABOVE_QUOTA, percent=0.0001, archive_folder=None, expunge=True)
        config = replace(
            stack.mailbox_config(office.address, alfa),
            imap_port=imap.port,
            smtp_port=smtp.port,
            saturation=expunge,
        )
        bootstrap.mailbox_admin(stack.deployment()).add(config, office.password, check=True)
        clients = [beta.add_mailbox(f"cliente{i}@pec.beta-{tag}.test") for i in range(3)]
        token = stack.add_person(f"op-{tag}", f"op@{tag}.test", "Operatore", {office.address: "operator"})
        world = cls(stack, tag, alfa, beta, office, clients, imap, smtp, token)
        world.first_invocation = len(stack.runner.invocations)
        world.send_in(1)
        world.audit_before = world.audit_actions()
        return world

    def close(self) -> None:
        self.imap.stop()
        self.smtp.stop()
        # its mailbox polls no more: the next cells' ticks stay short
        bootstrap.mailbox_store(self.stack.deployment()).set_enabled(self.office.address, False)

    def row(self) -> dict:
        return {"boundary": self.boundary, "fault": self.fault, "order": self.order, "checks": self.checks}

    # --- traffic --------------------------------------------------------------------------------
    def send_in(self, n: int, *, attachment: bytes | None = None) -> None:
        """`n` certified messages from the correspondents to the office (through their provider)."""
        for i in range(n):
            client = self.clients[i % len(self.clients)]
            files = [("capitolato.pdf", "application/pdf", attachment)] if attachment else []
            raw = builder.messaggio_originale(
                mittente=client.address,
                destinatari=[self.office.address],
                oggetto=f"Richiesta {next(_SEQ)}",
                testo="Buongiorno,\nvi scrivo per la pratica.\n",
                message_id=f"<r{next(_SEQ)}@{self.tag}.test>",
                allegati=files,
            )
            with smtplib.SMTP_SSL(
                self.beta.host, self.beta.port, context=self.beta.ssl_context(), timeout=20
            ) as smtp:
                smtp.login(client.address, client.password)
                smtp.sendmail(client.address, [self.office.address], raw)
        self.stack.network.wait_idle(60)

    def campaign(self, campaign_id: str, recipients: list[str] | None = None) -> list[str]:
        """A campaign from the office to `recipients` (default: the correspondents); each must get
        exactly one message unless the cell moves it to `never`."""
        addresses = recipients or [c.address for c in self.clients]
        manifest = {
            "mailbox": self.office.address,
            "subject": "Comunicazione – {{ ragione_sociale }}",
            "body_text": "Gentile {{ ragione_sociale }},\nle scriviamo per la pratica.\n",
            "attachments": [],
            "receipt_type": "breve",
        }
        rows = [{"pec": a, "ragione_sociale": f"Ditta {i}"} for i, a in enumerate(addresses)]
        upload(self.stack, campaign_id, manifest=manifest, rows=rows, files={})
        self.once |= set(addresses)
        self.audit_expected["campaign"] += 1  # the fan-out records the campaign in the mailbox's log
        return addresses

    def settle(self, campaign_id: str) -> dict:
        return settle(self.stack, campaign_id, max_minutes=120)

    def poll(self, times: int = 1) -> None:
        for _ in range(times):
            self.stack.network.wait_idle(60)
            self.stack.runner.advance(POLL, timeout=120)

    def invocations(self, function: str) -> list:
        return [i for i in self.stack.runner.invocations[self.first_invocation :] if i.function == function]

    # --- what the user sees ----------------------------------------------------------------------
    def status(self) -> dict:
        return MailboxStore(self.deployment.mailboxes_table, self.deployment.resource("dynamodb")).status(
            self.office.address
        )

    def saw_mailbox_status(self) -> str:
        status = self.status()
        text = (
            f"{status.get('error_kind', '')}: {status.get('last_error', '')}"
            if status.get("error_kind")
            else ""
        )
        self.seen.append(("mailbox health", text))
        return text

    def jobs(self, campaign_id: str) -> list:
        return list(bootstrap.campaign_admin(self.deployment).jobs(campaign_id))

    def saw_job_errors(self, campaign_id: str) -> list[str]:
        texts = [f"{j.recipient}: {j.state}: {j.error}" for j in self.jobs(campaign_id) if j.error]
        self.seen += [("job state", t) for t in texts]
        return texts

    def api(self, path: str, method: str = "GET", *, body=None, token: str | None = None):
        api = self.stack.serve_api()
        return json_request(
            f"{api.url}/mailboxes/{quote(self.office.address)}{path}",
            method,
            token=token or self.token,
            body=body,
        )

    def certified_rows(self) -> list[dict]:
        status, page = self.api("/messages")
        assert status == 200, page
        return [m for m in page["messages"] if m["kind"] == kinds.POSTA_CERTIFICATA]

    def take_in_charge(self) -> str:
        """The operator takes the first certified message in charge (an audited act)."""
        sha = self.certified_rows()[0]["sha256"]
        status, answer = self.api(f"/messages/{sha}/handling", "POST", body={"act": "take-in-charge"})
        assert status == 200, answer
        self.audit_expected["take-in-charge"] += 1
        return sha

    @property
    def deployment(self):
        return self.stack.deployment()

    def audit_actions(self) -> Counter:
        log = bootstrap.audit_log(self.deployment)
        return Counter(e.action for e in log.store.events(self.office.address))

    # --- the office's box and archive ------------------------------------------------------------
    def box(self) -> dict[str, bytes]:
        """Every message in the office's mailbox, in every folder, by sha256."""
        found = {}
        with self.stack.dovecot.connect(self.office.address) as client:
            for _flags, _delim, folder in client.list_folders():
                client.select_folder(folder, readonly=True)
                uids = client.search(["ALL"])
                for data in (client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}).values():
                    raw = data[b"BODY[]"]
                    found[hashlib.sha256(raw).hexdigest()] = raw
        return found


# --- the five checks ------------------------------------------------------------------------------


def no_message_lost(world: World) -> str | None:
    """Every message delivered to the office is archived in S3 (its exact bytes) and recorded, once."""
    messages = MessageStore(world.deployment.messages_table, world.deployment.resource("dynamodb"))
    records = messages.query(world.office.address, limit=5000)
    by_sha = Counter(r.sha256 for r in records)
    s3 = world.deployment.client("s3")
    bucket = world.deployment.archive_bucket
    for sha, raw in world.box().items():
        if by_sha[sha] != 1:
            return f"message {sha[:12]} in the box recorded {by_sha[sha]} times"
        if s3.get_object(Bucket=bucket, Key=f"messages/{sha[:2]}/{sha}.eml")["Body"].read() != raw:
            return f"message {sha[:12]}: the archived copy differs"
    delivered = [
        d for d in world.stack.network.deliveries if d.mailbox == world.office.address and d.error is None
    ]
    if len(records) != len(delivered):
        return f"{len(delivered)} messages delivered to the office, {len(records)} recorded"
    return None


def none_sent_twice(world: World) -> str | None:
    """Each campaign recipient got exactly one message (none when refused); no second submission."""
    if not world.once and not world.never:
        return NONE
    net = world.stack.network
    for address in sorted(world.once - world.never):
        if (n := received_by(net, address)) != 1:
            return f"{address} received {n} messages"
    for address in sorted(world.never):
        if (n := received_by(net, address)) != 0:
            return f"{address}, refused, received {n} messages"
    for address in sorted(world.once | world.never):
        accepted = [s for s in net.submissions if address in s.rcpt_tos and s.receipt == kinds.ACCETTAZIONE]
        if len(accepted) > 1:
            return f"{address} submitted {len(accepted)} times"
    return None


def nothing_expunged_unarchived(world: World) -> str | None:
    """What left the box was archived and verified first: its S3 copy hashes to its sha256, and
    every message delivered is in the box or in the archive."""
    messages = MessageStore(world.deployment.messages_table, world.deployment.resource("dynamodb"))
    records = {r.sha256: r for r in messages.query(world.office.address, limit=5000)}
    in_box = set(world.box())
    s3 = world.deployment.client("s3")
    for sha in set(records) - in_box:
        body = s3.get_object(Bucket=world.deployment.archive_bucket, Key=f"messages/{sha[:2]}/{sha}.eml")
        if hashlib.sha256(body["Body"].read()).hexdigest() != sha:
            return f"message {sha[:12]} left the box, its archived copy does not match"
    delivered = sum(
        1 for d in world.stack.network.deliveries if d.mailbox == world.office.address and d.error is None
    )
    if len(in_box | set(records)) < delivered:
        return f"{delivered - len(in_box | set(records))} messages left the box without an archived copy"
    return None if set(records) - in_box else NONE  # –: nothing left the box in this cell


def no_audit_event_lost(world: World) -> str | None:
    """The office's audit chain verifies and holds exactly the acts done (none lost, none twice)."""
    verdict = bootstrap.audit_log(world.deployment).verify(world.office.address)
    if not verdict.ok:
        return f"audit chain broken at {verdict.broken_at}: {verdict.reason}"
    done = world.audit_actions() - world.audit_before
    if done != world.audit_expected:
        return f"audit events {dict(done)}, expected {dict(world.audit_expected)}"
    return None


def clear_error_shown(world: World) -> str | None:
    """While the fault lasted the user saw a clear error where they look (job, mailbox health, the
    API's answer); once it is over, no stale error remains on the mailbox."""
    for where, words in world.expect_seen:
        texts = [text for w, text in world.seen if w == where and text]
        if not any(words.lower() in text.lower() for text in texts):
            return f"{where}: expected an error saying {words!r}, saw {texts or 'nothing'}"
    if world.status().get("error_kind"):
        return f"a stale error on the mailbox after recovery: {world.saw_mailbox_status()}"
    return None if world.expect_seen else NONE


CHECKS = {
    "lost": no_message_lost,
    "twice": none_sent_twice,
    "expunged": nothing_expunged_unarchived,
    "audit": no_audit_event_lost,
    "error": clear_error_shown,
}


def check_invariants(world: World) -> None:
    """The same checks after every cell; all are run and noted for the table, then asserted."""
    problems = []
    for name, check in CHECKS.items():
        try:
            outcome = check(world)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a broken invariant
            outcome = f"{type(exc).__name__}: {exc}"
        world.checks[name] = HELD if outcome is None else NONE if outcome == NONE else BROKEN
        if outcome not in (None, NONE):
            problems.append(f"{name}: {outcome}")
    assert not problems, "; ".join(problems)
