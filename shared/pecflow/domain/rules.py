"""A mailbox's automatic rules and the attachment formats it accepts (PEC and REM alike).

One document per mailbox (schemas/rules.schema.json, Draft 2020-12), written as YAML or JSON:
`accepted_formats` and a list of `rules`, each with conditions (`when`: all must hold, a list
means any of its values) and actions (`then`: save to S3, a printable PDF, tag, assign, notify,
auto-reply (pecflow.domain.autoreply: never in a loop), quarantine). Rules never delete and never
expunge: there is no such action.

Rules are decided on the message *record* (what was classified and recorded), so the same
decision runs at ingestion and in a dry run over recorded messages. Attachment formats are
recognised by content (magic bytes), also inside signed `.p7m` files, by `sniff`; the
ingestion stores the format on each attachment of the record.

Patterns are globs (fnmatch: `*`, `?`, `[abc]`), case-insensitive, at most 200 characters, matched
against text cut to 2,000 characters: never a user's regular expression, so no pattern can make
matching slow. Pure domain code: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pecflow.domain import schemas
from pecflow.domain.autoreply import (
    DEFAULT_PERIOD,
    AutoReply,
    ReplyTemplateError,
    compile_reply,
    period_words,
    sender_of,  # who sent the message: for an envelope the original sender, else the From address
)
from pecflow.pec import p7m

SCHEMA_NAME = "rules.schema.json"
ACTOR = "regole automatiche"  # who the audit trail says did an automatic act
MAX_MATCHED_CHARS = 2000
SNIFF_P7M_BYTES = 32 * 1024 * 1024
FORMATS = ("pdf", "xml", "p7m", "zip", "office", "image", "text", "html", "eml", "executable", "other")
# extensions whose content we can tell: a file so named whose content is something else is suspect
EXTENSIONS = {
    "pdf": "pdf",
    "xml": "xml",
    "p7m": "p7m",
    "p7s": "p7m",
    "zip": "zip",
    "docx": "office",
    "xlsx": "office",
    "pptx": "office",
    "odt": "office",
    "ods": "office",
    "doc": "office",
    "xls": "office",
    "png": "image",
    "jpg": "image",
    "jpeg": "image",
    "gif": "image",
    "tif": "image",
    "tiff": "image",
    "txt": "text",
    "csv": "text",
    "htm": "html",
    "html": "html",
    "eml": "eml",
    "exe": "executable",
}
LAYOUTS = ("by-date", "by-sender", "flat")
PARTS = ("header", "body", "attachments")
PDF_NAME = "messaggio.pdf"  # the `pdf` action's file, in the folder the `save` action would use
NOT_CHECKED = "not-checked"  # the signature condition's value for a message whose signature was not checked
# kinds whose attachments are checked: what people send (an anomalia carries an uncertified
# message, often the riskiest); receipts and notices are the providers' own
CONTENT_KINDS = ("posta-certificata", "posta-ordinaria", "anomalia")
# each format in the words of the office, for the reasons a message is held
FORMAT_WORDS = {
    "pdf": "PDF", "xml": "XML", "p7m": "file firmato (p7m)", "zip": "archivio compresso",
    "office": "documento Office", "image": "immagine", "text": "testo", "html": "pagina HTML",
    "eml": "messaggio e-mail", "executable": "programma eseguibile", "other": "sconosciuto",
}  # fmt: skip


class RulesError(ValueError):
    """A rules document that cannot be used: every problem, each naming its rule and field."""

    def __init__(self, problems: list[str]):
        super().__init__("Regole non valide:\n- " + "\n- ".join(problems))
        self.problems = problems


# --- the document -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Save:
    prefix: str
    layout: str = "by-date"
    parts: tuple[str, ...] = PARTS


@dataclass(frozen=True, slots=True)
class Pdf:
    """A printable PDF of the message with its receipts, under `prefix` in `layout`."""

    prefix: str
    layout: str = "by-date"


@dataclass(frozen=True, slots=True)
class Actions:
    save: Save | None = None
    tags: tuple[str, ...] = ()
    assign: str | None = None
    notify: tuple[str, ...] = ()
    quarantine: str | None = None
    reply: AutoReply | None = None
    pdf: Pdf | None = None

    def describe(self) -> list[str]:
        """The actions in words, for the dry run and the audit trail."""
        out = []
        if self.save is not None:
            out.append(f"salva {', '.join(self.save.parts)} in {self.save.prefix}/ ({self.save.layout})")
        if self.tags:
            out.append(f"etichetta {', '.join(self.tags)}")
        if self.assign:
            out.append(f"assegna a {self.assign}")
        if self.notify:
            out.append(f"avvisa {', '.join(self.notify)}")
        if self.pdf is not None:
            out.append(f"PDF stampabile con le ricevute in {self.pdf.prefix}/ ({self.pdf.layout})")
        if self.reply is not None:
            out.append(
                f"risposta automatica (a ogni mittente al più una volta ogni {period_words(self.reply.once_per)})"
            )
        if self.quarantine:
            out.append(f"quarantena: {self.quarantine}")
        return out


@dataclass(frozen=True, slots=True)
class Conditions:
    kinds: frozenset[str] = frozenset()
    senders: frozenset[str] = frozenset()
    sender_domains: frozenset[str] = frozenset()
    sender_pattern: str | None = None
    subject: str | None = None
    has_sdi: bool | None = None
    attachment_types: frozenset[str] = frozenset()
    signature: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: Conditions
    then: Actions
    enabled: bool = True
    stop: bool = False


@dataclass(frozen=True, slots=True)
class AcceptedFormats:
    allow: frozenset[str]
    extension_must_match: bool = True


@dataclass(frozen=True, slots=True)
class RulesDocument:
    rules: tuple[Rule, ...] = ()
    accepted: AcceptedFormats | None = None
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as written (JSON)

    @property
    def empty(self) -> bool:
        return not self.rules and self.accepted is None

    @property
    def replies(self) -> bool:
        """Does a rule answer in automatic (the ingestion then keeps a message's automatic signs)?"""
        return any(rule.then.reply is not None for rule in self.rules)


# --- reading a document -------------------------------------------------------------------------------
def schema() -> dict[str, Any]:
    """The published schema (packaged with pecflow, identical to schemas/ in the repo)."""
    return schemas.published(SCHEMA_NAME)


def _validator() -> Any:
    return schemas.validator(SCHEMA_NAME)


def load(data: Any) -> RulesDocument:
    """A rules document from its JSON value (YAML read as JSON); RulesError lists every problem."""
    problems = [_explain(data, e) for e in sorted(_validator().iter_errors(data), key=_error_order)]
    if problems:
        raise RulesError(problems)
    rules = []
    names: set[str] = set()
    for index, item in enumerate(data.get("rules", []), 1):
        name = item["name"].strip()
        if name.casefold() in names:
            problems.append(f"{_where(data, ['rules', index - 1])}: il nome è già usato da un'altra regola")
        names.add(name.casefold())
        try:
            rules.append(_rule(item))
        except ReplyTemplateError as exc:
            for field, problem in exc.problems:
                problems.append(f"{_where(data, ['rules', index - 1, 'then', 'reply', field])}: {problem}")
    if problems:
        raise RulesError(problems)
    accepted = data.get("accepted_formats")
    return RulesDocument(
        rules=tuple(rules),
        accepted=AcceptedFormats(
            frozenset(accepted["allow"]), bool(accepted.get("extension_must_match", True))
        )
        if accepted
        else None,
        source=data,
    )


def _rule(item: Mapping[str, Any]) -> Rule:
    when = item.get("when", {})
    then = item["then"]
    save, pdf, reply = then.get("save"), then.get("pdf"), then.get("reply")
    return Rule(
        name=item["name"].strip(),
        enabled=item.get("enabled", True),
        stop=item.get("stop", False),
        when=Conditions(
            kinds=frozenset(when.get("kind", ())),
            senders=frozenset(s.strip().lower() for s in when.get("sender", ())),
            sender_domains=frozenset(d.strip().lower().lstrip("@") for d in when.get("sender_domain", ())),
            sender_pattern=when.get("sender_pattern"),
            subject=when.get("subject"),
            has_sdi=when.get("has_sdi"),
            attachment_types=frozenset(when.get("attachment_types", ())),
            signature=frozenset(when.get("signature", ())),
        ),
        then=Actions(
            save=Save(save["prefix"], save.get("layout", "by-date"), tuple(save.get("parts", PARTS)))
            if save
            else None,
            tags=tuple(then.get("tag", ())),
            assign=then.get("assign"),
            notify=tuple(then.get("notify", ())),
            quarantine=then.get("quarantine"),
            reply=compile_reply(
                reply["template"], reply.get("subject"), reply.get("once_per", DEFAULT_PERIOD)
            )
            if reply
            else None,
            pdf=Pdf(pdf["prefix"], pdf.get("layout", "by-date")) if pdf else None,
        ),
    )


def _error_order(error: Any) -> tuple[str, ...]:
    return tuple(str(p) for p in error.absolute_path)


def _where(data: Any, path: Iterable[Any]) -> str:
    """'regola 2 («Fatture»), campo when.sender' — or 'campo accepted_formats.allow'."""
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "rules" and isinstance(parts[1], int):
        index = parts[1]
        rule = data["rules"][index] if isinstance(data, dict) else None
        name = rule.get("name") if isinstance(rule, dict) else None
        label = f"regola {index + 1}" + (f" («{str(name)[:60]}»)" if isinstance(name, str) else "")
        rest = _dotted(parts[2:])
        return f"{label}, campo {rest}" if rest else label
    return f"campo {_dotted(parts)}" if parts else "il documento"


def _dotted(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TYPES = {
    "object": "un oggetto",
    "array": "un elenco",
    "string": "un testo",
    "boolean": "true o false",
    "integer": "un numero intero",
}


def _explain(data: Any, error: Any) -> str:
    """One schema error in plain Italian words, located at its rule and field."""
    path = list(error.absolute_path)
    where = _where(data, path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted({str(name) for name in value} - set(known))  # YAML keys may be true, 1, ...
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"«{name}»" + (f" (forse «{close[0]}»?)" if close else ""))
        return f"{where}: campo sconosciuto {', '.join(hints)}; campi ammessi: {', '.join(known)}"
    if kind == "required":
        missing = [name for name in expected if name not in value]
        return f"{where}: manca il campo {', '.join(missing)}"
    if kind == "type":
        return f"{where}: deve essere {_TYPES.get(expected, expected)}"
    if kind == "enum":
        return f"{where}: {value!r} non è ammesso; valori ammessi: {', '.join(map(str, expected))}"
    if kind == "const":
        return f"{where}: deve valere {expected!r}"
    if kind == "minLength":
        return f"{where}: non può essere vuoto"
    if kind == "maxLength":
        return f"{where}: più lungo di {expected} caratteri"
    if kind == "pattern":
        return f"{where}: {str(value)[:80]!r} non va bene: {error.schema.get('description', expected)}"
    if kind in ("minItems", "minProperties"):
        return f"{where}: non può essere vuoto"
    if kind == "maxItems":
        return f"{where}: più di {expected} elementi"
    if kind == "uniqueItems":
        return f"{where}: un valore è ripetuto"
    return f"{where}: {error.message}"


def parse_text(text: str) -> RulesDocument:
    """A document as written in a file: JSON, or YAML when PyYAML is installed (the CLI's case)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - the CLI installs it
            raise RulesError(["il file non è JSON valido (per il formato YAML serve PyYAML)"]) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RulesError([f"il file non è YAML valido: {str(exc)[:300]}"]) from None
    return load(data)


# --- formats --------------------------------------------------------------------------------------------
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_IMAGES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_PEM_CMS = re.compile(rb"^-----BEGIN (PKCS7|CMS|PKCS #7 SIGNED DATA)-----")
_OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")


def sniff(data: bytes, *, inner: bool = True) -> str:
    """A file's format from its content: one of FORMATS, or "p7m/<format>" for a signed file
    whose content could be read (`inner`). A .p7m that cannot be opened stays "p7m"."""
    head = data[:2048]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if _is_cms(head):
        if inner and len(data) <= SNIFF_P7M_BYTES:
            try:
                return f"p7m/{sniff(p7m.extract_signed_content(data), inner=False)}"
            except (p7m.P7mError, ValueError):
                return "p7m"
        return "p7m"
    if head.startswith(b"PK\x03\x04"):
        window = data[:65536]
        if b"[Content_Types].xml" in window or window[30:38] == b"mimetype":
            return "office"
        return "zip"
    if head.startswith(_OLE2):
        return "office"
    if any(head.startswith(magic) for magic in _IMAGES):
        return "image"
    if head.startswith(b"MZ") or head.startswith(b"\x7fELF"):
        return "executable"
    text = _as_text(head)
    if text is None:
        return "other"
    start = text.lstrip("\ufeff \t\r\n")[:200].lower()
    if start.startswith(("<!doctype html", "<html")):
        return "html"
    if start.startswith("<"):
        return "xml"
    if re.match(r"(received|return-path|from|message-id|mime-version|date|subject):", start):
        return "eml"
    return "text"


def _is_cms(head: bytes) -> bool:
    if _PEM_CMS.match(head):
        return True
    if head[:1] == b"\x30" and _OID_SIGNED_DATA in head[:64]:
        return True
    if head[:2] == b"MI":  # base64 of a DER SEQUENCE (Italian invoices often come so)
        chunk = re.sub(rb"\s", b"", head[:120])
        try:
            decoded = base64.b64decode(chunk[: len(chunk) // 4 * 4], validate=True)
        except (binascii.Error, ValueError):
            return False
        return _OID_SIGNED_DATA in decoded[:64]
    return False


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut by the window
            return head[: exc.start].decode("utf-8")
        try:
            text = head.decode("cp1252")
        except UnicodeDecodeError:
            return None
        controls = sum(1 for c in text if ord(c) < 32 and c not in "\r\n\t\f")
        return text if controls <= len(text) // 100 else None


def extension_format(filename: str | None) -> str | None:
    """The format a file's extension claims (the last one: "x.xml.p7m" claims p7m), if known."""
    if not filename or "." not in filename:
        return None
    return EXTENSIONS.get(filename.rsplit(".", 1)[1].strip().lower())


def _word(found: str) -> str:
    return FORMAT_WORDS.get(found, found)


def refused_attachments(accepted: AcceptedFormats, attachments: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why each attachment (record entries with `filename` and `format`) is not accepted."""
    reasons = []
    for att in attachments:
        found = att.get("format")
        if not found:
            continue
        name = att.get("filename") or "(senza nome)"
        layers = str(found).split("/")
        refused = [f for f in layers if f not in accepted.allow]
        if refused:
            what = f"file firmato che contiene {_word(layers[1])}" if len(layers) > 1 else _word(layers[0])
            reasons.append(f"allegato «{name}»: formato non accettato ({what})")
            continue
        claimed = extension_format(name)
        if accepted.extension_must_match and claimed is not None and claimed != layers[0]:
            if claimed == "eml" and layers[0] == "text":
                continue
            reasons.append(
                f"allegato «{name}»: il nome dice {_word(claimed)} ma il contenuto è {_word(layers[0])}"
            )
    return reasons


def format_check(document: RulesDocument, record: Mapping[str, Any]) -> list[str]:
    """Why a recorded message's attachments are not accepted by its mailbox (none: accepted).
    Receipts and notices are the providers' own: only messages with content are checked."""
    if document.accepted is None or record.get("kind") not in CONTENT_KINDS:
        return []
    return refused_attachments(document.accepted, record.get("attachments") or [])


# --- deciding -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    actions: Actions


def _glob(pattern: str, text: str | None) -> bool:
    if text is None:
        return False
    return fnmatch.fnmatchcase(text[:MAX_MATCHED_CHARS].casefold(), pattern.casefold())


def matches(when: Conditions, record: Mapping[str, Any]) -> bool:
    if when.kinds and record.get("kind") not in when.kinds:
        return False
    sender = sender_of(record)
    if when.senders and sender not in when.senders:
        return False
    if when.sender_domains and sender.rpartition("@")[2] not in when.sender_domains:
        return False
    if when.sender_pattern is not None and not _glob(when.sender_pattern, sender):
        return False
    if when.subject is not None:
        subject = record.get("original_subject") or record.get("subject")
        if not _glob(when.subject, subject):
            return False
    if when.has_sdi is not None and bool(record.get("sdi")) != when.has_sdi:
        return False
    if when.attachment_types:
        found = {f for a in record.get("attachments") or [] for f in str(attachment_format(a)).split("/")}
        if not found & when.attachment_types:
            return False
    if when.signature and (record.get("signature") or NOT_CHECKED) not in when.signature:
        return False
    return True


def attachment_format(attachment: Mapping[str, Any]) -> str:
    """A recorded attachment's format: as sniffed at ingestion, or (records older than the
    rules) as its extension claims."""
    return str(attachment.get("format") or extension_format(attachment.get("filename")) or "other")


def decide(document: RulesDocument, record: Mapping[str, Any]) -> list[Decision]:
    """What the rules do with a recorded message, in order: the accepted formats first (a
    refused attachment quarantines, and no rule runs on what waits for an admin), then each
    enabled rule that matches, up to a `stop` or a rule that quarantines."""
    refused = format_check(document, record)
    if refused:
        return [Decision("formati accettati", Actions(quarantine="; ".join(refused)[:500]))]
    decisions = []
    for rule in document.rules:
        if rule.enabled and matches(rule.when, record):
            decisions.append(Decision(rule.name, rule.then))
            if rule.stop or rule.then.quarantine:
                break
    return decisions


# --- saving -----------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


def safe_name(name: str, fallback: str) -> str:
    """A file or folder name fit for an S3 key: no path, no control characters, bounded."""
    cleaned = _UNSAFE.sub("_", name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")[:120]
    return cleaned or fallback


def save_folder(save: Save | Pdf, record: Mapping[str, Any]) -> str:
    """Where a rule saves a message, under its prefix, in its layout (ends without '/')."""
    received = str(record.get("received_at") or "")[:10] or "0000-00-00"
    sha = str(record["sha256"])[:16]
    if save.layout == "flat":
        return f"{save.prefix}/{received}_{sha}"
    if save.layout == "by-sender":
        return f"{save.prefix}/{safe_name(sender_of(record), 'sconosciuto')}/{received}_{sha}"
    year, month, day = (received.split("-") + ["00", "00"])[:3]
    return f"{save.prefix}/{year}/{month}/{day}/{sha}"
