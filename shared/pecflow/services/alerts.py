"""Alerts at work: occurrences noted while a poll, a send or a check runs, grouped per cause,
subject and period on a grouping item (DynamoDB), published once per group through the channel
(the alarms topic, and a chat webhook when one is configured). Never through a PEC mailbox.

Whoever's conditional write first brings a group to its cause's threshold publishes the alert;
the others only add to its count. When a period is over, `summarize` publishes one summary per
group whose count grew after its alert. An alert that cannot be written or published never
stops the work that raised it: `on_failure` is told why (the handler logs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pecflow.domain import alerts as causes
from pecflow.domain import clock
from pecflow.domain.alerts import Occurrence, alert_text, example, group_key, period_start, summary_text

PERIOD_SECONDS = 3600
KEEP_SECONDS = 2 * 86400  # grouping items expire (TTL) two days after their period
SATURATION_PERCENT = 90.0
UNMATCHED_HOURS = 24.0
TO_HANDLE_HOURS = 8.0


# --- ports -----------------------------------------------------------------------------------------
class AlertGroups(Protocol):
    """The grouping items: one per cause, subject and period."""

    def add(self, key: str, count: int, fields: Mapping[str, Any]) -> int:
        """Add `count` to the group (created with `fields` if new); its count after."""
        ...

    def claim(self, key: str, count: int) -> bool:
        """Mark the group published at `count`: True for the one caller that did."""
        ...

    def closed(self, before: str) -> list[dict[str, Any]]:
        """Published groups whose period ended before `before` and whose count grew since,
        not yet summarized."""
        ...

    def claim_summary(self, key: str, total: int) -> bool: ...


class AlertChannel(Protocol):
    def publish(self, subject: str, text: str, attributes: Mapping[str, Any]) -> None: ...


class Waiting(Protocol):
    """What the scheduled check counts: receipts not matched, messages not taken in charge."""

    # (how many were received before `before`, a few of them) when one was received since
    # `since` (it has just crossed the threshold); (0, []) otherwise: each is told once
    def unmatched_before(
        self, mailbox: str, before: str, since: str, limit: int
    ) -> tuple[int, list[str]]: ...
    def to_handle_before(
        self, mailbox: str, before: str, since: str, limit: int
    ) -> tuple[int, list[str]]: ...


# --- the service -----------------------------------------------------------------------------------
@dataclass(slots=True)
class Alerts:
    groups: AlertGroups
    channel: AlertChannel
    period: int = PERIOD_SECONDS
    saturation_percent: float = SATURATION_PERCENT
    on_failure: Callable[[str], None] = lambda reason: None
    pending: dict[tuple[str, str], Occurrence] = field(default_factory=dict)

    # entry points ------------------------------------------------------------------------------
    def raise_(self, cause: str, *, mailbox: str, campaign_id: str | None = None, count: int = 1,
               example: str | None = None, detail: str | None = None) -> int:  # fmt: skip
        """Raise an alert now (grouped): e.g. `alerts.raise_("sdi-scartata", mailbox=...,
        example="fattura 12/2026 a ACME: scartata (NS 00200)")`. Returns the alerts published."""
        self.note(Occurrence(cause, mailbox, campaign_id, count, [example] if example else [], detail))
        return self.flush()

    def note(self, occurrence: Occurrence) -> None:
        """Keep an occurrence until `flush` (a poll notes many, writes once per group)."""
        key = (occurrence.cause, occurrence.subject)
        if key in self.pending:
            self.pending[key].merge(occurrence)
        else:
            self.pending[key] = occurrence

    def received(self, mailbox: str, msg: Any, campaign_id: str | None) -> None:
        """The ingestor's hook: a receipt saying a message we sent did not arrive (or not yet).
        Only noted in memory (written by `after_poll`); never raises into the poll."""
        cause = causes.receipt_cause(msg.kind)
        if cause is None:
            return
        try:
            recipient = msg.delivered_to or ", ".join(r.address for r in msg.recipients[:3])
            line = example(
                ("destinatario", recipient),
                ("oggetto", f"«{msg.original_subject}»" if msg.original_subject else None),
                ("motivo", msg.error_detail or msg.error),
                ("messaggio", msg.ref_message_id),
            )
            self.note(Occurrence(cause, mailbox, campaign_id, examples=[line] if line else []))
        except Exception as exc:  # noqa: BLE001 - an alert never stops the work that raised it
            self.on_failure(f"avviso {cause} per {mailbox} non annotato: {_why(exc)}")

    def after_poll(self, outcome: Any) -> int:
        """A poll's outcome: a mailbox that could not be read, one near saturation, invalid
        provider signatures, quarantined messages; then every occurrence noted is written."""
        mailbox = outcome.request.mailbox
        if not outcome.ok:
            detail = f"{outcome.error_kind}: {outcome.error}"
            self.note(Occurrence(causes.LETTURA_FALLITA, mailbox, detail=detail[:300]))
        result = outcome.result
        if result is not None:
            if result.usage_percent is not None and result.usage_percent >= self.saturation_percent:
                detail = f"occupata al {result.usage_percent:.0f}% (soglia {self.saturation_percent:g}%)"
                self.note(Occurrence(causes.CASELLA_QUASI_PIENA, mailbox, detail=detail))
            if result.invalid_signatures:
                count = max(len(result.invalid_signatures), int(result.signatures.get("invalid", 0)))
                self.note(
                    Occurrence(
                        causes.FIRMA_NON_VALIDA,
                        mailbox,
                        count=count,
                        examples=list(result.invalid_signatures[:5]),
                    )  # fmt: skip
                )
            if result.quarantined:
                self.note(
                    Occurrence(
                        causes.QUARANTENA,
                        mailbox,
                        count=len(result.quarantined),
                        examples=list(result.quarantined[:5]),
                    )  # fmt: skip
                )
        return self.flush()

    def notify(self, people: Iterable[str], mailbox: str, record: Mapping[str, Any], rule: str) -> None:
        """The rules' `notify` action (the Notifier port): the people are named in the alert and
        in its `persone` attribute (subscriptions filter on it). Raises when it cannot go out, so
        the rule records the failure."""
        line = example(
            ("da", record.get("from")),
            ("oggetto", f"«{record.get('subject')}»" if record.get("subject") else None),
            ("tipo", record.get("kind")),
            ("ricevuto", record.get("received_at")),
        )
        occurrence = Occurrence(causes.REGOLA, mailbox, examples=[line], people=tuple(people), rule=rule)
        published, failures = self._write(occurrence, clock.now())
        if failures:
            raise RuntimeError(failures[0])

    # writing -----------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write every noted occurrence to its group; publish the groups this call opened."""
        pending, self.pending = list(self.pending.values()), {}
        now = clock.now()
        published = 0
        for occurrence in pending:
            count, failures = self._write(occurrence, now)
            published += count
            for reason in failures:
                self.on_failure(reason)
        return published

    def _write(self, occurrence: Occurrence, now: datetime) -> tuple[int, list[str]]:
        start = period_start(now, self.period)
        key = group_key(occurrence, start)
        threshold = causes.CAUSES[occurrence.cause].threshold
        end = start + timedelta(seconds=self.period)
        fields = {
            "cause": occurrence.cause,
            "subject": occurrence.subject,
            "mailbox": occurrence.mailbox,
            "period_start": clock.iso(start),
            "period_end": clock.iso(end),
            "expires": int(end.timestamp()) + KEEP_SECONDS,
        }
        try:
            total = self.groups.add(key, occurrence.count, fields)
            if total < threshold or not self.groups.claim(key, total):
                return 0, []
        except Exception as exc:  # noqa: BLE001 - an alert never stops the work that raised it
            return 0, [f"avviso {occurrence.cause} per {occurrence.mailbox} non registrato: {_why(exc)}"]
        occurrence.count = total
        subject, text = alert_text(occurrence, start, self.period)
        return self._publish(subject, text, occurrence)

    def _publish(self, subject: str, text: str, occurrence: Occurrence) -> tuple[int, list[str]]:
        attributes: dict[str, Any] = {"causa": occurrence.cause, "casella": occurrence.mailbox}
        if occurrence.people:
            attributes["persone"] = list(occurrence.people)
        try:
            self.channel.publish(subject, text, attributes)
        except Exception as exc:  # noqa: BLE001 - as above
            return 0, [f"avviso {occurrence.cause} per {occurrence.mailbox} non inviato: {_why(exc)}"]
        return 1, []

    def summarize(self) -> int:
        """One summary per group whose period is over and whose count grew after its alert."""
        published = 0
        for group in self.groups.closed(clock.iso()):
            total, at = int(group["count"]), int(group["published_count"])
            try:
                if not self.groups.claim_summary(group["group"], total):
                    continue
                if not causes.CAUSES[group["cause"]].summary:
                    continue
            except Exception as exc:  # noqa: BLE001
                self.on_failure(f"riepilogo {group['group']} non registrato: {_why(exc)}")
                continue
            start = datetime.fromisoformat(str(group["period_start"]).replace("Z", "+00:00"))
            subject, text = summary_text(
                group["cause"], group["subject"], group["mailbox"], total, at, start, self.period
            )
            sent, failures = self._publish(subject, text, Occurrence(group["cause"], group["mailbox"]))
            published += sent
            for reason in failures:
                self.on_failure(reason)
        return published


@dataclass(slots=True)
class AlertChecks:
    """The time-based causes, checked once per period by the poll scheduler: receipts still
    unmatched after a while, messages nobody took in charge in time (hours per mailbox, from its
    alert settings), then the summaries of the periods just ended. A mailbox is alerted when
    some of them crossed the threshold since the last check (each message once, not every
    period), with the count of all those waiting."""

    alerts: Alerts
    waiting: Waiting
    settings_of: Callable[[str], Mapping[str, Any]]
    claim_run: Callable[[str], bool]  # once per period, whichever scheduler tick comes first
    last_run: str | None = None  # this container's last claimed period: no write to ask again

    def run(self, mailboxes: Iterable[str]) -> int | None:
        """Alerts published; None when another tick of this period already ran the checks."""
        now = clock.now()
        start = period_start(now, self.alerts.period)
        key = f"checks#{clock.iso(start)}"
        if key == self.last_run or not self.claim_run(key):
            return None
        self.last_run = key
        for mailbox in mailboxes:
            settings = self.settings_of(mailbox)
            self._check(mailbox, causes.RICEVUTE_NON_ABBINATE, now,
                        float(settings.get("unmatched_hours") or UNMATCHED_HOURS))  # fmt: skip
            self._check(mailbox, causes.NON_PRESI_IN_CARICO, now,
                        float(settings.get("to_handle_hours") or TO_HANDLE_HOURS))  # fmt: skip
        return self.alerts.flush() + self.alerts.summarize()

    def _check(self, mailbox: str, cause: str, now: datetime, hours: float) -> None:
        before = clock.iso(now - timedelta(hours=hours))
        # the previous check's threshold: what crossed it since then is new
        since = clock.iso(now - timedelta(hours=hours, seconds=self.alerts.period))
        count_of = (
            self.waiting.unmatched_before
            if cause == causes.RICEVUTE_NON_ABBINATE
            else self.waiting.to_handle_before
        )
        try:
            count, examples = count_of(mailbox, before, since, causes.MAX_EXAMPLES)
        except Exception as exc:  # noqa: BLE001 - one mailbox's check never stops the others'
            self.alerts.on_failure(f"controllo {cause} di {mailbox} non riuscito: {_why(exc)}")
            return
        if count:
            self.alerts.note(Occurrence(cause, mailbox, count=count, examples=examples, hours=hours))


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
