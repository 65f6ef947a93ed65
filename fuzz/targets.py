"""The fuzz targets: each reads one input of hostile bytes the way production reads it, and may
fail only with the error it documents (a clear message for the person); anything else, a hang or
unbounded memory is a crash. Seeds are built by our own builders (local/pecbuild), never copied.

`TARGETS[name].run(data)` runs one input; `fuzz/__main__.py` drives them with atheris or
hypothesis, tests/unit/test_fuzz.py with hypothesis for a few seconds and over every regression
fixture in tests/fuzz_regressions/<target>/.
"""

from __future__ import annotations

import email
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from pydantic import BaseModel, ValidationError

from pecflow.domain import rules
from pecflow.domain.campaign import (
    CampaignError,
    Manifest,
    compile_templates,
    read_rows,
    render_message,
)
from pecflow.pec import daticert, message, p7m, reading, rem, sdi

MAX_INPUT = 256 * 1024  # bytes of one input (libFuzzer's -max_len and hypothesis' max_size)
WHEN = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    what: str


# --- the targets ---------------------------------------------------------------------------------------
def classify(data: bytes) -> None:
    """The classifier never raises: every input has a kind, and a record that serialises."""
    found = message.classify(data)
    assert found.kind, "a message without a kind"
    json.dumps(found.to_dict(), ensure_ascii=False).encode("utf-8")


def read_message(data: bytes) -> None:
    """What the inbox shows (headers, text, files) and every file's bytes."""
    shown = reading.read(data)
    for index in range(min(len(shown.files), 5)):
        reading.file(data, index)


def read_daticert(data: bytes) -> None:
    try:
        record = daticert.parse(data)
    except daticert.DaticertError:
        return
    record.timestamp  # noqa: B018 - the date, as the receipt's time is read


def read_rem_evidence(data: bytes) -> None:
    try:
        evidence = rem.parse_evidence(data)
    except rem.EvidenceError:
        return
    rem.attribution(evidence)
    rem.concerned(evidence)


def read_sdi(data: bytes) -> None:
    """An attachment by each kind of SdI name: the reader returns a file, or None; never raises."""
    for name in ("IT01234567890_00001.xml", "IT01234567890_00001_RC_001.xml", "IT01234567890_00001.xml.p7m"):
        sdi.read_file(name, data)
    sdi.recognise([("IT01234567890_00001_NS_001.xml", lambda: data)])


def read_p7m(data: bytes) -> None:
    try:
        p7m.extract_signed_content(data)
    except p7m.P7mError:
        return


def read_csv(data: bytes) -> None:
    try:
        for _ in read_rows(io.BytesIO(data), size=len(data)):
            pass
    except CampaignError:
        return


def render_template(data: bytes) -> None:
    """The bytes as a campaign's body, subject and PDF template: refused or rendered within the
    sandbox's budgets, never an escape and never an exception other than the campaign's own."""
    source = data.decode("utf-8", errors="replace")
    try:
        manifest = Manifest.from_dict(
            {
                "mailbox": "ufficio@pec.azienda.it",
                "subject": source[:200],
                "body_text": source,
                "pdf": {"filename": "avviso.pdf", "template": source},
            }
        )
        templates = compile_templates(manifest)
        render_message(
            manifest,
            {"nome": "Mario", "pec": "mario@pec.it"},
            mailbox="ufficio@pec.azienda.it",
            message_id="<fuzz@pec.azienda.it>",
            date=WHEN,
            templates=templates,
        )
    except CampaignError:
        return


def read_manifest(data: bytes) -> None:
    try:
        manifest = Manifest.parse(data)
        compile_templates(manifest)
    except CampaignError:
        return


def read_rules(data: bytes) -> None:
    try:
        document = rules.parse_text(data.decode("utf-8", errors="replace"))
    except rules.RulesError:
        return
    record = {"sha256": "ab" * 32, "from": "cliente@pec.it", "subject": "Fattura", "received_at": "2026-03-02",
              "kind": "posta-certificata", "attachments": [{"filename": "f.pdf", "format": "pdf"}]}  # fmt: skip
    for decision in rules.decide(document, record):
        if decision.actions.save is not None:
            folder = rules.save_folder(decision.actions.save, record)
            assert ".." not in folder.split("/") and not folder.startswith("/"), folder
            assert all(c >= " " for c in folder), f"a control character in {folder!r}"
    rules.format_check(document, record)


def validate_api_models(data: bytes) -> None:
    """The API's request bodies: refused with a ValidationError (the API's 400), never another."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return
    for model in request_models():
        try:
            model.model_validate(body)
        except ValidationError:
            pass


@cache
def request_models() -> tuple[type[BaseModel], ...]:
    """Every model that reads a request body: those that forbid unknown fields (answers do not)."""
    import importlib
    import pkgutil

    import pecflow.api

    for info in pkgutil.iter_modules(pecflow.api.__path__):
        importlib.import_module(f"pecflow.api.{info.name}")
    found: list[type[BaseModel]] = []
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("pecflow.api") and model.model_config.get("extra") == "forbid":
            found.append(model)
    return tuple(sorted(set(found), key=lambda m: (m.__module__, m.__name__)))


# --- seeds: built by our builders ---------------------------------------------------------------------
@cache
def _pec_messages() -> tuple[bytes, ...]:
    from local.pecbuild import corpus

    return tuple(c.raw for c in corpus.corpus(24, seed=19))


@cache
def _rem_messages() -> tuple[bytes, ...]:
    from local.pecbuild import corpus

    return tuple(c.raw for c in (*corpus.rem_corpus()[:12], *corpus.rem_robustness()))


def _parts(raws: tuple[bytes, ...], wanted: Callable[[email.message.Message], bool]) -> list[bytes]:
    out: list[bytes] = []
    for raw in raws:
        for part in email.message_from_bytes(raw).walk():
            if not part.is_multipart() and wanted(part):
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and payload not in out:
                    out.append(payload)
    return out


def _named(*suffixes: str) -> Callable[[email.message.Message], bool]:
    return lambda part: (part.get_filename() or "").lower().endswith(suffixes)


def _sdi_seeds() -> list[bytes]:
    from local.pecbuild import corpus

    raws = tuple(c.raw for c in corpus.corpus(60, seed=3) if c.expected.get("sdi_type"))
    return _parts(raws, _named(".xml", ".p7m"))[:12] or [b"<FatturaElettronica/>"]


def _evidence(part: email.message.Message) -> bool:
    return "xml_evidence" in str(part.get("REM-Section-Type", ""))


def _manifests() -> list[bytes]:
    base = {"mailbox": "ufficio@pec.azienda.it", "subject": "Avviso per {{ nome }}",
            "body_text": "Gentile {{ nome }},\n{% for r in righe %}{{ r.importo|importo }}{% endfor %}"}  # fmt: skip
    return [
        json.dumps(base).encode(),
        json.dumps(
            {**base, "pdf": {"filename": "avviso-{{ nome }}.pdf", "template": "{{ nome|upper }}"}}
        ).encode(),
        json.dumps({**base, "cc": "copia@pec.azienda.it", "receipt_type": "breve"}).encode(),
    ]


def _rules_seeds() -> list[bytes]:
    document = {
        "version": 1,
        "accepted_formats": {"allow": ["pdf", "xml", "p7m"], "extension_must_match": True},
        "rules": [
            {"name": "fatture", "when": {"from": "*@pec.fornitore.it", "subject": "*fattura*"},
             "then": {"save": {"prefix": "fatture/in", "layout": "by-sender"}, "tags": ["fattura"]}},
        ],
    }  # fmt: skip
    return [json.dumps(document).encode(), b"version: 1\nrules: []\n"]


def _api_bodies() -> list[bytes]:
    return [
        b'{"text": "Gentile cliente, ..."}',
        b'{"to": "legale@pec.alfa.test", "text": "Per competenza"}',
        b'{"act": "assign", "to": "collega", "note": "x"}',
        b'{"reason": "doppione"}',
        b'{"files": ["recipients.csv", "attachments/a.pdf"]}',
        b'{"role": "viewer"}',
        b'{"username": "mario", "email": "mario@alfa.test", "name": "Mario"}',
    ]


_CSV = [
    b"Nome;PEC;Importo\r\nMario Rossi;mario@pec.it;1.234,50\r\nAnna;anna@pec.it;12\r\n",
    '"nome","pec"\n"Rossi, Mario";"mario@pec.it"\n'.encode("utf-16"),
    "\ufeffnome,pec,allegato\nGiò,gio@pec.it,fattura.pdf\n".encode(),
]
_TEMPLATES = [
    b"Gentile {{ nome }},\n{% for i in range(3) %}{{ i|importo }} {% endfor %}{{ '2026-03-02'|data }}",
    b"{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}{{ nome.upper() }}",
    b"{{ ('x' * 10)|center(20) }} {{ '%05d' % 3 }} {{ '{:>4}'.format(nome) }}",
]


def _all_targets() -> dict[str, Target]:
    targets = [
        Target(
            "pec-classify", classify, lambda: list(_pec_messages()), "PEC messages through the classifier"
        ),
        Target(
            "rem-classify", classify, lambda: list(_rem_messages()), "REM messages through the classifier"
        ),
        Target(
            "message-reading",
            read_message,
            lambda: list(_pec_messages()[:8] + _rem_messages()[:4]),
            "what the inbox shows of a message, and its files",
        ),  # fmt: skip
        Target(
            "daticert", read_daticert, lambda: _parts(_pec_messages(), _named("daticert.xml")), "daticert.xml"
        ),  # fmt: skip
        Target(
            "rem-evidence", read_rem_evidence, lambda: _parts(_rem_messages(), _evidence), "REM evidence XML"
        ),
        Target("sdi", read_sdi, _sdi_seeds, "SdI invoices and notices (XML, base64, p7m)"),
        Target(
            "p7m",
            read_p7m,
            lambda: _parts(_pec_messages(), _named(".p7m", ".p7s"))[:8] or [b"0\x80"],
            "signed files (CMS, DER, PEM, base64)",
        ),  # fmt: skip
        Target("campaign-csv", read_csv, lambda: list(_CSV), "the campaign's recipients CSV"),
        Target("campaign-manifest", read_manifest, _manifests, "manifest.json and its templates"),
        Target(
            "campaign-template",
            render_template,
            lambda: list(_TEMPLATES),
            "a template as subject, body and PDF, rendered in the sandbox",
        ),  # fmt: skip
        Target("rules", read_rules, _rules_seeds, "a mailbox's rules (JSON or YAML) and their decisions"),
        Target("api-models", validate_api_models, _api_bodies, "the API's request bodies"),
    ]
    return {t.name: t for t in targets}


TARGETS = _all_targets()
