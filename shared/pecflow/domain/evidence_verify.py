"""Checking an evidence pack offline (`pecflow evidence verify`): no pecflow account, no AWS,
no network. What is checked, file by file, and said in plain Italian:

1. the time-stamp (manifest.tsr, a TSA's TimeStampResp) is an RFC 3161 token over the SHA-256 of manifest.json,
   signed by a TSA whose certificate chains to the TSA anchors given (or, saying so, those the
   pack carries);
2. every file the manifest lists is there with that SHA-256 and size, and no file is there that
   it does not list;
3. every provider message (the message, its receipts) carries the provider's S/MIME signature
   over its exact bytes, by a certificate that chains to the providers' anchors given (or,
   saying so, those the pack carries) and was valid when it signed (pecflow.pec.signature);
4. every daticert / REM evidence XML is the one inside the .eml it was taken from, and a
   receipt's file name names its own hash;
5. every REM evidence (in its message and as extracted) carries the provider's own XAdES
   signature over its exact bytes, checked the same way against the same anchors
   (pecflow.pec.xades).

The pack holds only if everything holds. Pure: reads a `zipfile.ZipFile` it is given.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pecflow.domain import evidence as pack
from pecflow.pec import evidence_timestamp as ts
from pecflow.pec import kinds, signature
from pecflow.pec import message as pec_message

if TYPE_CHECKING:
    from cryptography import x509

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_CHECKED_MESSAGE_BYTES = 512 * 1024 * 1024  # a provider message read whole to check its signature
CHUNK = 1024 * 1024
MAX_SMALL_FILE_BYTES = 4 * 1024 * 1024  # the time-stamp token and the anchors' PEM: a few kB each


@dataclass(frozen=True, slots=True)
class FileVerdict:
    path: str
    ok: bool
    words: str  # what holds, or what does not, in Italian


@dataclass(slots=True)
class Report:
    verdicts: list[FileVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the verdicts rest on
    stamp: ts.Stamp | None = None

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)

    def add(self, path: str, ok: bool, words: str) -> None:
        self.verdicts.append(FileVerdict(path, ok, words))

    def failures(self) -> list[FileVerdict]:
        return [v for v in self.verdicts if not v.ok]


def _hash_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with zf.open(info) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo | str) -> bytes:
    """A member that is small by nature, read up to MAX_SMALL_FILE_BYTES (a zip bomb in a forged
    pack stops there): ValueError past it."""
    with zf.open(info) as f:
        data = f.read(MAX_SMALL_FILE_BYTES + 1)
    if len(data) > MAX_SMALL_FILE_BYTES:
        raise ValueError(f"more than {MAX_SMALL_FILE_BYTES // (1024 * 1024)} MB")
    return data


def _anchors_from_pack(zf: zipfile.ZipFile, name: str) -> list[x509.Certificate]:
    try:
        return signature.read_certificates(_read_small(zf, name))
    except (KeyError, ValueError):
        return []


def verify(
    zf: zipfile.ZipFile,
    *,
    provider_anchors: signature.TrustAnchors | None = None,
    tsa_anchors: Sequence[x509.Certificate] | None = None,
) -> Report:
    """The verdict on every file of the pack. Anchors not given: those in the pack, said in the
    report's notes (they prove the pack consistent, not who its signers are)."""
    report = Report()
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if info.filename in infos:
            report.add(info.filename, False, "il file compare due volte nel fascicolo: non si sa quale valga")
        infos[info.filename] = info
    if pack.MANIFEST not in infos:
        report.add(pack.MANIFEST, False, "manca il manifest: il fascicolo non è verificabile")
        return report
    with zf.open(infos[pack.MANIFEST]) as f:
        manifest_bytes = f.read(MAX_MANIFEST_BYTES + 1)
    try:
        if len(manifest_bytes) > MAX_MANIFEST_BYTES:
            raise ValueError("too large")
        manifest = json.loads(manifest_bytes)
        listed = {str(f["path"]): f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        report.add(pack.MANIFEST, False, "il manifest è illeggibile (non è il JSON di un fascicolo pecflow)")
        return report

    _check_stamp(zf, infos, manifest_bytes, tsa_anchors, report)

    for name in infos:
        if name not in listed and name not in (pack.MANIFEST, pack.TOKEN):
            report.add(name, False, "file aggiunto: non è elencato nel manifest")
    for path, item in listed.items():
        found = infos.get(path)
        if found is None:
            report.add(path, False, "MANCANTE: il manifest lo elenca ma non è nel fascicolo")
            continue
        info = found
        sha, size = _hash_member(zf, info)
        if sha != item.get("sha256") or size != item.get("size"):
            report.add(
                path,
                False,
                f"ALTERATO: la sua impronta SHA-256 è {sha}, il manifest dice {item.get('sha256')}",
            )
            continue
        words = "integro (impronta SHA-256 uguale a quella del manifest)"
        ok = True
        role = item.get("role")
        if role in pack.SIGNED_ROLES:
            ok, said = _check_signature(zf, info, sha, role, provider_anchors, report)
            words += f"; {said}"
        elif role in (pack.ROLE_DATICERT, pack.ROLE_REM):
            ok, said = _check_extracted(zf, infos, info, item)
            words += f"; {said}"
            if role == pack.ROLE_REM:
                signed, said = _check_evidence_signature(zf, info, provider_anchors, report)
                ok, words = ok and signed, f"{words}; {said}"
        report.add(path, ok, words)
    return report


def _check_stamp(
    zf: zipfile.ZipFile,
    infos: dict[str, zipfile.ZipInfo],
    manifest_bytes: bytes,
    tsa_anchors: Sequence[x509.Certificate] | None,
    report: Report,
) -> None:
    if pack.TOKEN not in infos:
        report.add(pack.TOKEN, False, "manca la marca temporale del manifest")
        return
    anchors = list(tsa_anchors or ())
    if not anchors:
        anchors = _anchors_from_pack(zf, pack.TSA_ANCHORS)
        if anchors:
            report.notes.append(
                "Marca temporale verificata con i certificati della TSA contenuti nel fascicolo "
                f"({pack.TSA_ANCHORS}): per una verifica indipendente indicare --tsa-anchors."
            )
    try:
        token = _read_small(zf, infos[pack.TOKEN])
    except ValueError as exc:
        report.add(pack.TOKEN, False, f"marca temporale NON VALIDA: il file è troppo grande ({exc})")
        return
    try:
        stamp = ts.check_response(token, ts.manifest_digest(manifest_bytes), anchors)
    except ts.TimestampError as exc:
        report.add(pack.TOKEN, False, f"marca temporale NON VALIDA: {exc}")
        return
    report.stamp = stamp
    report.add(
        pack.TOKEN,
        True,
        f"marca temporale valida: il manifest esisteva così com'è il {stamp.at.astimezone(UTC):%d/%m/%Y %H:%M:%S} UTC "
        f"(TSA {stamp.tsa}, numero di serie {stamp.serial})",
    )


def _check_signature(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    sha: str,
    role: Any,
    anchors: signature.TrustAnchors | None,
    report: Report,
) -> tuple[bool, str]:
    anchors = _provider_anchors(zf, anchors, report)
    if info.file_size > MAX_CHECKED_MESSAGE_BYTES:
        return False, "troppo grande per verificarne la firma"
    if role == pack.ROLE_RECEIPT and sha[:16] not in info.filename:
        return False, "il nome del file non corrisponde al suo contenuto (ricevuta scambiata?)"
    raw = zf.read(info)
    msg = pec_message.parse(raw)
    check = signature.check_message(msg, anchors, received=datetime.now(UTC))
    if check.outcome == signature.MISSING and role == pack.ROLE_MESSAGE and msg.kind == kinds.POSTA_ORDINARIA:
        return True, "messaggio di posta ordinaria: nessuna firma di gestore attesa"
    ok, said = _signature_said("firma del gestore", check)
    if check.evidence is not None:  # a REM message: its evidence's own XAdES signature too
        evidence_ok, evidence_said = _signature_said("firma XAdES dell'evidenza REM", check.evidence)
        ok, said = ok and evidence_ok, f"{said}; {evidence_said}"
    return ok, said


def _signature_said(what: str, check: signature.SignatureCheck) -> tuple[bool, str]:
    said = f"{what} {pack.signature_words(check.outcome)}"
    if check.signer is not None:
        said += f" (firmatario {check.signer.subject})"
    if check.outcome == signature.VALID:
        return True, said
    return False, f"{said}: {check.reason}"


def _provider_anchors(
    zf: zipfile.ZipFile, anchors: signature.TrustAnchors | None, report: Report
) -> signature.TrustAnchors:
    if anchors is not None:
        return anchors
    note = (
        "Firme dei gestori verificate con le ancore di fiducia contenute nel fascicolo "
        f"({pack.PROVIDER_ANCHORS}): per una verifica indipendente indicare --anchors "
        "(ad esempio l'elenco dei gestori PEC pubblicato da AgID)."
    )
    if note not in report.notes:
        report.notes.append(note)
    return signature.TrustAnchors(_anchors_from_pack(zf, pack.PROVIDER_ANCHORS), pack.PROVIDER_ANCHORS)


def _check_evidence_signature(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, anchors: signature.TrustAnchors | None, report: Report
) -> tuple[bool, str]:
    """The XAdES signature of an extracted REM evidence, over the bytes in the pack."""
    from pecflow.pec import xades

    if info.file_size > xades.MAX_EVIDENCE_BYTES:
        return False, "troppo grande per un'evidenza REM: firma non verificata"
    check = signature.verify_evidence(
        zf.read(info), _provider_anchors(zf, anchors, report), received=datetime.now(UTC)
    )
    return _signature_said("firma XAdES del gestore", check)


def _check_extracted(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], info: zipfile.ZipInfo, item: dict[str, Any]
) -> tuple[bool, str]:
    source = infos.get(str(item.get("of") or ""))
    if source is None:
        return False, f"non si trova il messaggio da cui è stato estratto ({item.get('of')})"
    head, tail = b"", b""
    with zf.open(source) as f:
        while chunk := f.read(CHUNK):
            if len(head) < pack.PARSE_BYTES:
                head += chunk[: pack.PARSE_BYTES - len(head)]
            tail = (tail + chunk)[-pack.PARSE_BYTES :]
    whole = source.file_size <= pack.PARSE_BYTES
    rest = b"" if whole else tail[-(source.file_size - len(head)) :]
    taken = dict(pack.certified_xml(head, rest, complete=whole))
    if taken.get(str(item.get("role"))) != zf.read(info):
        return False, f"non è uguale a quello contenuto in {source.filename}"
    return True, f"uguale a quello contenuto in {source.filename}"
