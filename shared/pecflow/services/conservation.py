"""The conservation export of a mailbox's period (pacchetto di versamento; pecflow.domain.conservation
says what is in it), for an administrator through the API or for the operator through the CLI.

Order of operations: the role is checked (administrators of the mailbox only); the exported
periods are read and the new one checked against them (not over yet, or overlapping one already
exported: refused, naming it; `continue_`: from the day after the last one); the act is recorded
in the audit log; the period's records are read oldest first and each archived .eml is streamed
into the zip in chunks, hashed on the way and checked against the hash it is archived under,
then its metadata written; a sent message is added with its first receipt; then the index;
both XML files are checked against our schemas; once the package is whole (closed; in the API,
uploaded) the period is recorded (a conditional write: an export recorded meanwhile makes this one
fail, and its package is never handed out). Memory
holds a chunk, a record and one small entry per document, never a whole file or the package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, Protocol

from pecflow.domain import clock
from pecflow.domain import conservation as pdv
from pecflow.domain.access import Action, Person
from pecflow.domain.audit import AuditAction
from pecflow.domain.conservation import Document, IndexedFile, PackageInfo, Period, PeriodError
from pecflow.services.audit import AuditLog
from pecflow.services.evidence import ArchivedBytes, EvidenceError, Jobs, PackStore
from pecflow.services.inbox import InboxError, Source

# documents the API packs in one request, within its 29 s (each is an S3 read, and its metadata
# validated: ~10 ms); the CLI has no limit
API_DOCUMENTS = 300


# --- ports -----------------------------------------------------------------------------------------
class PeriodRecords(Protocol):
    def received_between(self, mailbox: str, start: str, end: str) -> Iterator[dict[str, Any]]: ...
    def counts_between(self, mailbox: str, periods: Sequence[tuple[str, str]]) -> list[int]:
        """How many records each [start, end) holds."""
        ...


class PeriodLog(Protocol):
    def recorded(self, mailbox: str) -> tuple[int, list[dict[str, Any]]]: ...
    def record(self, mailbox: str, period: dict[str, Any], *, seen: int) -> bool: ...


class ConservationError(InboxError):
    """An export that cannot be made as asked (the API answers 400 with this text)."""


@dataclass(frozen=True, slots=True)
class Exported:
    period: Period
    documents: int
    sent: int
    receipts: int
    sha256: str  # of the whole package (the zip)
    size: int
    index_sha256: str
    filename: str
    notes: tuple[str, ...]
    records: int = (
        0  # the period's records when it was exported (a later count that is higher: late arrivals)
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """A period checked against those exported (`seen`: how many there were)."""

    seen: int
    period: Period
    notes: tuple[str, ...]
    previous: tuple[Period, ...]


class _Hashing:
    """The package's stream, hashed and counted as it is written."""

    def __init__(self, out: IO[bytes]):
        self.out, self.digest, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # the caller closes `out`


class ConservationExports:
    def __init__(
        self,
        records: PeriodRecords,
        periods: PeriodLog,
        originals: ArchivedBytes,
        audit: AuditLog,
        *,
        outbox: Jobs | None = None,
        packages: PackStore | None = None,
        now: Callable[[], datetime] = clock.now,
        api_documents: int = API_DOCUMENTS,
    ):
        self.records, self.periods, self.originals, self.audit = records, periods, originals, audit
        self.outbox, self.packages, self.now, self.api_documents = outbox, packages, now, api_documents

    # --- for a person (the API) -----------------------------------------------------------------
    def exported(self, person: Person, mailbox: str) -> dict[str, Any]:
        """The mailbox's exported periods, oldest first, and the gaps between them."""
        person.require(mailbox, Action.MANAGE_MAILBOX)
        _, done = self.periods.recorded(mailbox)
        return {
            "periods": done,
            "gaps": pdv.gaps(
                Period(date.fromisoformat(p["first"]), date.fromisoformat(p["last"])) for p in done
            ),
        }

    def link(
        self,
        person: Person,
        mailbox: str,
        *,
        first: str | None,
        last: str,
        continue_: bool = False,
        source: Source | None = None,
    ) -> dict[str, Any]:
        if self.packages is None:
            raise RuntimeError("no package store wired: the API keeps packages in the downloads bucket")
        person.require(mailbox, Action.MANAGE_MAILBOX)
        plan = self._plan(mailbox, first, last, continue_)
        period = plan.period
        start, end = (pdv.clock_key(b) for b in period.bounds())
        [count] = self.records.counts_between(mailbox, [(start, end)])
        if count > self.api_documents:
            raise ConservationError(
                f"il periodo {period} ha {count} messaggi: l'API ne esporta al più {self.api_documents}; "
                "esportare con la riga di comando (pecflow conservazione export) o un periodo più breve / "
                f"the period holds {count} messages, the API exports at most {self.api_documents}"
            )
        created = self.now()
        key = f"conservation/{mailbox.lower()}/{period.key}-{created:%Y%m%dT%H%M%S%f}.zip"
        with self.packages.writer(key) as out:
            built = self._build(out, mailbox, plan, person.username, source, created)
        # recorded once the package is stored (an unrecorded one is never linked; the bucket forgets it)
        self._record(mailbox, plan, built, person.username, created)
        return {
            "url": self.packages.link(key, built.filename), "filename": built.filename,
            "first": period.first.isoformat(), "last": period.last.isoformat(),
            "documents": built.documents, "sha256": built.sha256, "notes": list(built.notes),
        }  # fmt: skip

    # --- for the operator (the CLI, with the stack's credentials) ---------------------------------
    def write(
        self,
        mailbox: str,
        out: IO[bytes],
        *,
        first: str | None,
        last: str,
        continue_: bool = False,
        actor: str,
        source: Source | None = None,
    ) -> Exported:
        """Write the package into `out`, then record the period (False to record: ConservationError)."""
        plan = self._plan(mailbox, first, last, continue_)
        created = self.now()
        built = self._build(out, mailbox, plan, actor, source, created)
        out.flush()
        self._record(mailbox, plan, built, actor, created)
        return built

    def recorded(self, mailbox: str) -> list[dict[str, Any]]:
        return self.periods.recorded(mailbox)[1]

    # --- the package ------------------------------------------------------------------------------
    def _plan(self, mailbox: str, first: str | None, last: str, continue_: bool) -> _Plan:
        seen, done = self.periods.recorded(mailbox)
        exported = [Period(date.fromisoformat(p["first"]), date.fromisoformat(p["last"])) for p in done]
        late = self._late(mailbox, done)
        try:
            if continue_:
                period = pdv.continued(exported, Period.parse(last, last).last)
            else:
                if not first:
                    raise PeriodError(
                        "indicare il primo giorno (--from; nell'API first) oppure di proseguire dall'ultima "
                        "esportazione (--continue; from_last_export) / give the first day, or continue"
                    )
                period = Period.parse(first, last)
            notes = pdv.check_new_period(period, exported, self.today())
        except ValueError as exc:
            raise ConservationError(str(exc)) from None
        return _Plan(seen, period, (*late, *notes), tuple(exported))

    def _late(self, mailbox: str, done: list[dict[str, Any]]) -> list[str]:
        """The exported periods that hold more records now than when they were exported: messages
        recorded late (a poller stopped for days), in no package. Said, never silently left."""
        notes = []
        counted = [item for item in done if "records" in item]
        periods = [Period(date.fromisoformat(i["first"]), date.fromisoformat(i["last"])) for i in counted]
        bounds = [(pdv.clock_key(a), pdv.clock_key(b)) for a, b in (p.bounds() for p in periods)]
        counts = self.records.counts_between(mailbox, bounds) if bounds else []
        for item, period, now in zip(counted, periods, counts, strict=True):
            if now > int(item["records"]):
                notes.append(
                    f"ATTENZIONE: nel periodo già esportato {period} sono stati registrati {now - int(item['records'])} "
                    "messaggi dopo la sua esportazione, che non sono in alcun pacchetto / messages were recorded in "
                    f"the exported period {period} after its export: they are in no package"
                )
        return notes

    def today(self) -> date:
        from zoneinfo import ZoneInfo

        return self.now().astimezone(ZoneInfo(pdv.ROME)).date()

    def _build(
        self,
        out: IO[bytes],
        mailbox: str,
        plan: _Plan,
        actor: str,
        source: Source | None,
        created: datetime,
    ) -> Exported:
        period = plan.period
        source = source or Source()
        mailbox = mailbox.lower()
        self.audit.record(
            mailbox, actor=actor, action=AuditAction.CONSERVATION, source_ip=source.ip, client=source.client,
            details={"dal": period.first.isoformat(), "al": period.last.isoformat()},
        )  # fmt: skip
        info = PackageInfo(mailbox, period, created, actor, plan.previous, plan.notes)
        hashed = _Hashing(out)
        writer = zipfile.ZipFile(hashed, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        stamp = max(created.timetuple()[:6], (1980, 1, 1, 0, 0, 0))
        files: list[IndexedFile] = []
        counts = {pdv.SENT: 0, pdv.RECEIPT: 0}
        records, unarchived = 0, []
        try:
            start, end = (pdv.clock_key(b) for b in period.bounds())
            for record in self.records.received_between(mailbox, start, end):
                records += 1
                if not record.get("s3_key") or not record.get("sha256"):
                    unarchived.append(
                        str(record.get("sha256") or "?")[:24]
                    )  # too large to fetch: never archived
                    continue
                sent = self._sent_with_first_receipt(mailbox, record)
                primary = None
                if sent is not None:
                    job, message_id = sent
                    files.append(self._sent(writer, stamp, len(files) + 1, mailbox, job, message_id, info))
                    counts[pdv.SENT] += 1
                    primary = files[-1].doc.sha256
                files.append(self._received(writer, stamp, len(files) + 1, record, primary, info))
                counts[pdv.RECEIPT] += files[-1].doc.category == pdv.RECEIPT
            if unarchived:
                info = dataclasses.replace(info, notes=(*info.notes, _unarchived(unarchived)))
            index = pdv.index_xml(info, files)
            errors = pdv.schema_errors(index, pdv.INDEX_SCHEMA)
            if errors:
                raise ConservationError(
                    f"the package's index does not validate against its schema: {errors[:3]}"
                )
            writer.writestr(_info(pdv.INDEX, stamp), index)
            writer.close()
        except BaseException:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the package is abandoned; the first error is the one said
                pass
            raise
        built = Exported(
            period=period, documents=len(files), sent=counts[pdv.SENT], receipts=counts[pdv.RECEIPT],
            sha256=hashed.digest.hexdigest(), size=hashed.size,
            index_sha256=hashlib.sha256(index).hexdigest(),
            filename=f"pdv-{_slug(mailbox)}-{period.key}.zip", notes=tuple(info.notes), records=records,
        )  # fmt: skip
        return built

    def _record(self, mailbox: str, plan: _Plan, built: Exported, actor: str, created: datetime) -> None:
        period = plan.period
        recorded = self.periods.record(
            mailbox.lower(),
            {
                "first": period.first.isoformat(),
                "last": period.last.isoformat(),
                "documents": built.documents,
                "sent": built.sent,
                "receipts": built.receipts,
                "records": built.records,
                "package_sha256": built.sha256,
                "package_size": built.size,
                "index_sha256": built.index_sha256,
                "filename": built.filename,
                "created_at": clock.iso(created),
                "created_by": actor,
            },
            seen=plan.seen,
        )
        if not recorded:
            raise ConservationError(
                f"un'altra esportazione della casella è stata registrata nel frattempo: il pacchetto {period} "
                "non è registrato né consegnato; ripetere l'esportazione / another export of the mailbox was "
                "recorded meanwhile: this package is discarded, export again"
            )

    def _sent_with_first_receipt(self, mailbox: str, record: dict[str, Any]) -> tuple[Any, str] | None:
        """The message of ours a receipt is about, when this receipt is the first one recorded
        for it (so that the sent message goes in exactly one package)."""
        about = record.get("outgoing_message_id")
        job_of = getattr(self.outbox, "job", None)
        if not about or job_of is None or pdv.category_of(record.get("kind")) != pdv.RECEIPT:
            return None
        job = job_of(str(about))
        if job is None or not job.sent_s3_key or not job.receipts:
            return None
        first = min(job.receipts.items(), key=lambda item: (str(item[1].get("at") or ""), item[0]))[0]
        return (job, str(about)) if first == record["sha256"] else None

    def _received(
        self, writer: zipfile.ZipFile, stamp: tuple, n: int, record: dict[str, Any], primary: str | None,
        info: PackageInfo,
    ) -> IndexedFile:  # fmt: skip
        sha256 = str(record["sha256"])
        if primary is None and record.get("outgoing_message_id"):
            primary = self._sent_sha(str(record["outgoing_message_id"]))
        path = pdv.document_path(n, sha256)
        size = _copy(writer, stamp, path, self.originals.chunks(str(record["s3_key"])), sha256)
        return _metadata(writer, stamp, pdv.received_document(n, record, size, primary), info)

    def _sent_sha(self, message_id: str) -> str | None:
        """The hash of a message of ours (its archive key is named after it), which a receipt is about."""
        job_of = getattr(self.outbox, "job", None)
        job = job_of(message_id) if job_of is not None else None
        return pdv.sha_of_key(str(job.sent_s3_key)) if job is not None and job.sent_s3_key else None

    def _sent(
        self, writer: zipfile.ZipFile, stamp: tuple, n: int, mailbox: str, job: Any, message_id: str,
        info: PackageInfo,
    ) -> IndexedFile:  # fmt: skip
        scan = pdv.AttachmentScan()
        expected = pdv.sha_of_key(str(job.sent_s3_key))
        path = pdv.sent_path(n, expected)
        chunks = _scanned(self.originals.chunks(str(job.sent_s3_key)), scan)
        digest = hashlib.sha256()
        size = _copy(writer, stamp, path, _hashed(chunks, digest), expected)
        head = job.head or {}
        recipients = [str(r) for r in head.get("recipients") or [job.recipient]]
        sent_at = next(
            (at for state, at in (job.reached_at or {}).items() if str(state.value) == "sent"), None
        )
        doc = pdv.sent_document(
            n, digest.hexdigest(), size, path, mailbox=mailbox, message_id=message_id,
            subject=head.get("subject"), recipients=recipients,
            sent_at=str(sent_at or job.created_at or head.get("created_at") or clock.iso(info.created_at)),
            attachments=scan.close(),
        )  # fmt: skip
        return _metadata(writer, stamp, doc, info)


def _info(path: str, stamp: tuple) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=stamp)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _copy(
    writer: zipfile.ZipFile, stamp: tuple, path: str, chunks: Iterator[bytes], expected: str | None
) -> int:
    """Stream an archived .eml into the package; its size. EvidenceError when its bytes are not
    the ones it is archived under (the archive is damaged: no package is built)."""
    digest, size = hashlib.sha256(), 0
    with writer.open(_info(path, stamp), "w", force_zip64=True) as dst:
        for chunk in chunks:
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    got = digest.hexdigest()
    if expected is not None and got != expected:
        raise EvidenceError(
            f"the archived copy of {path} does not match its hash ({got} instead of {expected}): "
            "the archive is damaged, the package is not built"
        )
    return size


def _hashed(chunks: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _scanned(chunks: Iterator[bytes], scan: pdv.AttachmentScan) -> Iterator[bytes]:
    for chunk in chunks:
        scan.feed(chunk)
        yield chunk


def _metadata(writer: zipfile.ZipFile, stamp: tuple, doc: Document, info: PackageInfo) -> IndexedFile:
    xml = pdv.metadata_xml(doc, mailbox=info.mailbox, series=info.series)
    errors = pdv.schema_errors(xml, pdv.METADATA_SCHEMA)
    if errors:
        raise ConservationError(
            f"the metadata of {doc.path} do not validate against their schema: {errors[:3]}"
        )
    writer.writestr(_info(doc.metadata_path, stamp), xml)
    return IndexedFile(doc, hashlib.sha256(xml).hexdigest(), len(xml))


def _unarchived(shas: list[str]) -> str:
    return (
        f"ATTENZIONE: {len(shas)} messaggi registrati nel periodo non hanno un originale archiviato (troppo "
        f"grandi per essere scaricati dal gestore) e non sono nel pacchetto: {', '.join(shas[:20])} / "
        f"{len(shas)} messages of the period have no archived original and are not in the package"
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
