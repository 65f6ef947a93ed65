"""The evidence pack of one message (pecflow.domain.evidence says what is in it), built for a
person through the API or for the operator through the CLI.

Order of operations: the role is checked as for reading the message (no role: "not found"); the
act is recorded in the audit log ("evidence", before the pack is built, so the pack's audit
trail shows it); the message's record, the messages of ours it is linked to (as the message view
links them: what it is about, what was sent from it) and their receipts are read; each archived
.eml is streamed into the zip in chunks, hashed on the way and checked against the hash it is
archived under; the daticert / REM evidence is taken from each .eml's head; then the timeline,
audit trail, anchors and summary; then the manifest; then the TSA's time-stamp over it. Memory
holds a chunk, a message's head and the records, never a whole file or the pack.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from pecflow.domain import clock
from pecflow.domain import evidence as pack
from pecflow.domain.access import Action, NotVisible, Person, Role, allows
from pecflow.domain.audit import AuditAction
from pecflow.domain.evidence import Entry, Receipt, Sent
from pecflow.domain.records import receipt_order
from pecflow.pec.evidence_timestamp import Stamp, TimestampError, manifest_digest
from pecflow.services.audit import AuditLog
from pecflow.services.inbox import InboxError, Records, Source

MAX_AUDIT_EVENTS = 5000
RECEIPT_LIMIT = 5000  # receipts packed per sent message


# --- ports -----------------------------------------------------------------------------------------
class ArchivedBytes(Protocol):
    """The archive of originals, read in chunks."""

    def chunks(self, key: str) -> Iterator[bytes]: ...


class PackStore(Protocol):
    """Where the API leaves a pack for the person to download it."""

    def writer(self, key: str) -> AbstractContextManager[IO[bytes]]: ...
    def link(self, key: str, filename: str) -> str: ...


class Timestamper(Protocol):
    url: str

    def stamp(self, digest: bytes) -> tuple[bytes, Stamp]:
        """The TSA's answer (a DER TimeStampResp) over the SHA-256 `digest`, checked."""
        ...


class Rows(Protocol):
    def row(self, mailbox: str, sha256: str) -> dict[str, Any] | None: ...


class Jobs(Protocol):
    def job(self, message_id: str) -> Any: ...


class EvidenceError(InboxError):
    """A pack that cannot be built as asked (the API answers 400 with this text)."""


@dataclass(frozen=True, slots=True)
class Built:
    """What a pack holds: its files, and the time-stamp (None: no TSA configured)."""

    entries: tuple[Entry, ...]
    stamp: Stamp | None
    receipts: int
    filename: str


class EvidencePacks:
    def __init__(
        self,
        records: Records,
        audit: AuditLog,
        originals: ArchivedBytes,
        *,
        rows: Rows | None = None,
        outbox: Jobs | None = None,
        timestamper: Timestamper | None = None,
        packs: PackStore | None = None,
        provider_anchors: Callable[[], bytes] = lambda: b"",
        tsa_anchors: bytes = b"",
        now: Callable[[], datetime] = clock.now,
    ):
        self.records, self.audit, self.originals = records, audit, originals
        self.rows, self.outbox, self.timestamper, self.packs = rows, outbox, timestamper, packs
        self.provider_anchors, self.tsa_anchors, self.now = provider_anchors, tsa_anchors, now

    # --- for a person (the API) -----------------------------------------------------------------
    def link(self, person: Person, mailbox: str, sha256: str, source: Source | None = None) -> dict[str, Any]:
        """Build the pack into the pack store; a short-lived link to it."""
        if self.packs is None:
            raise RuntimeError("no pack store wired: the API keeps packs in the downloads bucket")
        source = source or Source()
        role = person.require(mailbox, Action.DOWNLOAD)
        fields, row = self._visible(mailbox, sha256, role)
        self.audit.record(
            mailbox, actor=person.username, action=AuditAction.EVIDENCE, message=sha256,
            source_ip=source.ip, client=source.client, details={"pack": "zip"},
        )  # fmt: skip
        created = self.now()
        key = f"evidence/{sha256}/{created:%Y%m%dT%H%M%S%f}.zip"
        with self.packs.writer(key) as out:
            built = self._build(out, mailbox, fields, row, person.username, created)
        return {"url": self.packs.link(key, built.filename), "filename": built.filename,
                "files": len(built.entries), "timestamped": built.stamp is not None}  # fmt: skip

    # --- for the operator (the CLI, with the stack's credentials) ---------------------------------
    def write(
        self, mailbox: str, sha256: str, out: IO[bytes], *, actor: str, source: Source | None = None
    ) -> Built:
        source = source or Source()
        fields, row = self._visible(mailbox, sha256, Role.ADMIN, rowless=True)
        self.audit.record(
            mailbox, actor=actor, action=AuditAction.EVIDENCE, message=sha256,
            source_ip=source.ip, client=source.client, details={"pack": "zip"},
        )  # fmt: skip
        return self._build(out, mailbox, fields, row, actor, self.now())

    def _visible(
        self, mailbox: str, sha256: str, role: Role, *, rowless: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The message's record and inbox row, as its reader may see them (`rowless`: the
        operator's CLI also packs a recorded message that has no inbox row)."""
        row = self.rows.row(mailbox, sha256) if self.rows is not None else {}
        if row is None and rowless:
            row = {}
        if row is None or (row.get("deleted") and not allows(role, Action.RESTORE)):
            raise NotVisible(f"message {sha256} not found in {mailbox}")
        fields = _fields(self.records.get(mailbox, sha256))
        if not fields:
            raise NotVisible(f"message {sha256} not found in {mailbox}")
        if not fields.get("s3_key"):
            raise EvidenceError("this message has no archived original: there is nothing to prove")
        return fields, row

    # --- the pack ---------------------------------------------------------------------------------
    def _build(
        self,
        out: IO[bytes],
        mailbox: str,
        fields: dict[str, Any],
        row: Mapping[str, Any],
        actor: str,
        created: datetime,
    ) -> Built:
        sha256 = str(fields["sha256"])
        writer = _Writer(out, created)
        try:
            writer.copy(pack.MESSAGE, pack.ROLE_MESSAGE, self.originals.chunks(str(fields["s3_key"])), sha256)
            sent = self._sent(writer, mailbox, fields, row)
            writer.small(pack.TIMELINE, pack.ROLE_TIMELINE, pack.json_bytes(pack.timeline(fields, sent)))
            trail = self.audit.store.of_message(mailbox, sha256, limit=MAX_AUDIT_EVENTS)
            writer.small(pack.AUDIT, pack.ROLE_AUDIT, pack.json_bytes([asdict(e) for e in trail]))
            anchors = self.provider_anchors()
            if anchors:
                writer.small(pack.PROVIDER_ANCHORS, pack.ROLE_PROVIDER_ANCHORS, anchors)
            if self.tsa_anchors:
                writer.small(pack.TSA_ANCHORS, pack.ROLE_TSA_ANCHORS, self.tsa_anchors)
            tsa_url = self.timestamper.url if self.timestamper is not None else None
            text = pack.summary_text(
                mailbox=mailbox, fields=fields, sent=sent, entries=list(writer.entries),
                created_at=created, created_by=actor, tsa_url=tsa_url,
            )  # fmt: skip
            writer.small(pack.SUMMARY, pack.ROLE_SUMMARY, pack.summary_pdf(text))
            manifest = pack.manifest(
                mailbox=mailbox, message=sha256, entries=writer.entries,
                created_at=created, created_by=actor, tsa_url=tsa_url,
            )  # fmt: skip
            writer.raw(pack.MANIFEST, manifest)
            stamp = None
            if self.timestamper is not None:
                try:
                    answer, stamp = self.timestamper.stamp(manifest_digest(manifest))
                except TimestampError as exc:
                    raise EvidenceError(f"the pack could not be time-stamped: {exc}") from None
                writer.raw(pack.TOKEN, answer)
            writer.close()
        except BaseException:
            writer.abandon()
            raise
        receipts = sum(len(s.receipts) for s in sent)
        return Built(tuple(writer.entries), stamp, receipts, f"fascicolo-{sha256[:16]}.zip")

    def _sent(
        self, writer: _Writer, mailbox: str, fields: Mapping[str, Any], row: Mapping[str, Any]
    ) -> list[Sent]:
        """The messages of ours the message is linked to, their bytes and their receipts' in the pack."""
        linked = []
        about = fields.get("outgoing_message_id") or fields.get("thread_of")
        if about:
            linked.append((str(about), "riguarda"))
        linked += [
            (str(row[k]), rel)
            for k, rel in (("last_reply", "risposta"), ("last_forward", "inoltro"))
            if row.get(k)
        ]
        job_of = getattr(self.outbox, "job", None)
        sent: list[Sent] = []
        n_receipt = 0
        for n, (message_id, relation) in enumerate(linked, start=1):
            job = job_of(message_id) if job_of is not None else None
            if job is None:
                sent.append(Sent(message_id, relation, None, None, "sconosciuto", None, {}, ()))
                continue
            head = job.head or {}
            sent_path = None
            if job.sent_s3_key:
                sent_path = pack.sent_path(n, str(job.sent_s3_key))
                writer.copy(sent_path, pack.ROLE_SENT, self.originals.chunks(str(job.sent_s3_key)), None)
            receipts = []
            ordered = sorted(job.receipts.items(), key=lambda item: receipt_order(item[1]))
            for receipt_sha, seen in ordered[:RECEIPT_LIMIT]:
                found = _fields(self.records.get(job.mailbox or mailbox, receipt_sha))
                record = {k: found[k] for k in (*pack.RECEIPT_FIELDS, "s3_key") if found.get(k) is not None}
                del found
                path = None
                if record.get("s3_key"):
                    n_receipt += 1
                    path = pack.receipt_path(n_receipt, seen.get("kind") or record.get("kind"), receipt_sha)
                    chunks = self.originals.chunks(str(record["s3_key"]))
                    writer.copy(path, pack.ROLE_RECEIPT, chunks, receipt_sha)
                receipts.append(
                    Receipt(receipt_sha, seen.get("kind") or record.get("kind"), seen.get("at"), path, record)
                )
            reached = {str(state.value): at for state, at in (job.reached_at or {}).items()}
            sent.append(
                Sent(message_id, relation, head.get("subject"), job.recipient, str(job.state), job.error,
                     reached, tuple(receipts), sent_path)
            )  # fmt: skip
        return sent


class _Writer:
    """The zip being written: each file streamed in, hashed on the way; the XML a provider
    certifies taken from each .eml's head and added after it."""

    def __init__(self, out: IO[bytes], created: datetime):
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.stamp = created.timetuple()[:6]
        self.entries: list[Entry] = []

    def _info(self, path: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=max(self.stamp, (1980, 1, 1, 0, 0, 0)))  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def copy(self, path: str, role: str, chunks: Iterator[bytes], expected: str | None) -> None:
        digest, size, head, tail = hashlib.sha256(), 0, b"", b""
        with self.zip.open(self._info(path), "w", force_zip64=True) as dst:
            for chunk in chunks:
                dst.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if len(head) < pack.PARSE_BYTES:
                    head += chunk[: pack.PARSE_BYTES - len(head)]
                tail = (tail + chunk)[-pack.PARSE_BYTES :]
        sha = digest.hexdigest()
        if expected is not None and sha != expected:
            raise EvidenceError(
                f"the archived copy of {path} does not match its hash ({sha} instead of {expected}): "
                "the archive is damaged, the pack is not built"
            )
        self.entries.append(Entry(path, sha, size, role))
        whole = size <= pack.PARSE_BYTES
        for what, xml in pack.certified_xml(
            head, b"" if whole else tail[-(size - len(head)) :], complete=whole
        ):
            self.small(pack.xml_path(path, what), what, xml, of=path)

    def small(self, path: str, role: str, data: bytes, of: str | None = None) -> None:
        self.raw(path, data)
        self.entries.append(Entry(path, hashlib.sha256(data).hexdigest(), len(data), role, of))

    def raw(self, path: str, data: bytes) -> None:
        self.zip.writestr(self._info(path), data)

    def close(self) -> None:
        self.zip.close()

    def abandon(self) -> None:
        try:
            self.zip.close()
        except Exception:  # noqa: BLE001 - the pack is abandoned anyway; the first error is the one said
            pass


def _fields(record: Any) -> dict[str, Any]:
    if record is None:
        return {}
    return record.as_dict() if hasattr(record, "as_dict") else dict(record)
