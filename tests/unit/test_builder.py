"""The PEC message builder: every kind parsed back with the stdlib, signatures checked by openssl."""

from __future__ import annotations

import email
import email.utils
import hashlib
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from email import policy

import pytest

from local.pecbuild import builder
from local.pecbuild.builder import (
    ARUBA,
    LEGALMAIL,
    NAMIRIAL,
    SIMULATO,
    Autorita,
    Destinatario,
    Firma,
    Gestore,
    busta_anomalia,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
    ricevuta,
)
from local.pecbuild.corpus import corpus
from pecflow.pec import daticert, kinds

CET = timezone(timedelta(hours=1))
INVIO = datetime(2024, 2, 12, 9, 30, 15, tzinfo=CET)
MITTENTE = "ufficio.acquisti@pec.mittente.example"
TO = ("protocollo@pec.destinatario.example", "segreteria@pec.altro.example")
CC = ("legale@pec.studio.example",)
ESTERNO = "info@ordinaria.example"
IDENTIFICATIVO = nuovo_identificativo(ARUBA, INVIO, 42)
OGGETTO = "Fattura n° 2024/117 – saldo"

ALLEGATO_PDF = ("preventivo.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"%%EOF\n")
ALLEGATO_ACCENTATO = ("dichiarazione_conformità.txt", "text/plain", "Dichiarazione di conformità\n".encode())
INOLTRATO = messaggio_originale(
    mittente="terzi@esempio.example",
    destinatari=[MITTENTE],
    oggetto="Messaggio inoltrato",
    testo="testo inoltrato\n",
    data=INVIO,
)


def _originale(**changes) -> bytes:
    args = {
        "mittente": MITTENTE,
        "destinatari": [*TO, ESTERNO],
        "cc": CC,
        "oggetto": OGGETTO,
        "testo": "Buongiorno,\nin allegato quanto richiesto.\nSaluti\n",
        "html": "<p>Buongiorno</p>",
        "allegati": [ALLEGATO_PDF, ALLEGATO_ACCENTATO, ("inoltro.eml", "message/rfc822", INOLTRATO)],
        "message_id": "<client-123@pec.mittente.example>",
        "tipo_ricevuta": "completa",
        "data": INVIO,
    }
    return messaggio_originale(**(args | changes))


ORIGINALE = _originale()
DESTINATARI = (*(Destinatario(a) for a in (*TO, *CC)), Destinatario(ESTERNO, "esterno"))
DOPO = INVIO + timedelta(seconds=2)


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def _text(msg, subtype: str = "plain") -> str:
    """A text body as Python sees it, line ends normalised (the parser keeps CRLF)."""
    return msg.get_body((subtype,)).get_content().replace("\r\n", "\n")


def _layout(part) -> object:
    """The MIME tree as nested (content type, [children]) with names where present."""
    name = part.get_param("name")
    label = f"{part.get_content_type()}:{name}" if name else part.get_content_type()
    if part.get_content_maintype() == "multipart":
        return (label, [_layout(p) for p in part.get_payload()])
    return label  # an embedded message/rfc822 is a leaf here


def _layout_atteso(*, daticert_: bool, postacert: bool, legacy: bool = False) -> object:
    inner = [("multipart/alternative", ["text/plain", "text/html"])]
    if daticert_:
        inner.append("application/xml:daticert.xml")
    if postacert:
        inner.append("message/rfc822:postacert.eml")
    firma = "application/x-pkcs7-signature" if legacy else "application/pkcs7-signature"
    return ("multipart/signed", [("multipart/mixed", inner), f"{firma}:smime.p7s"])


def _part(msg, filename):
    return next((p for p in msg.walk() if p.get_filename() == filename), None)


def _daticert(raw: bytes) -> daticert.Daticert:
    record = daticert.parse(_part(_parse(raw), "daticert.xml").get_payload(decode=True))
    assert record.problems == ()
    return record


def _postacert(raw: bytes) -> bytes | None:
    """The raw bytes of the embedded postacert.eml, cut from the message itself."""
    match = re.search(rb'Content-Type: message/rfc822; name="postacert.eml"\r\n(?:[^\r\n]+\r\n)*\r\n', raw)
    if match is None:
        return None
    boundary = b"\r\n--" + _parse(raw).get_payload()[0].get_boundary().encode()
    return raw[match.end() : raw.index(boundary, match.end())]


def _signed(raw: bytes) -> tuple[bytes, bytes]:
    """(the exact bytes of the signed first part, the DER signature), per RFC 1847."""
    msg = _parse(raw)
    delim = b"--" + msg.get_boundary().encode()
    body = raw.partition(b"\r\n\r\n")[2]
    start = body.index(delim + b"\r\n") + len(delim) + 2
    end = body.index(b"\r\n" + delim, start)
    return body[start:end], msg.get_payload()[1].get_payload(decode=True)


def _common_checks(raw: bytes) -> email.message.EmailMessage:
    """What holds for every provider message: CRLF only, ASCII headers, signed layout."""
    assert raw.count(b"\n") == raw.count(b"\r\n"), "bare LF"
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.isascii()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/signed"
    assert msg.get_param("protocol") in ("application/pkcs7-signature", "application/x-pkcs7-signature")
    assert msg.get_param("micalg") == "sha-256"
    assert msg["MIME-Version"] == "1.0"
    assert email.utils.parsedate_to_datetime(msg["Date"]).utcoffset() is not None
    assert msg.defects == []
    return msg


# --- the original message ---------------------------------------------------------------


def test_messaggio_originale_parses_back():
    msg = _parse(ORIGINALE)
    assert ORIGINALE.count(b"\n") == ORIGINALE.count(b"\r\n")
    assert ORIGINALE.isascii()
    assert msg["Subject"] == OGGETTO
    assert "=?utf-8?" in ORIGINALE.partition(b"\r\n\r\n")[0].decode()
    assert [a.addr_spec for a in msg["To"].addresses] == [*TO, ESTERNO]
    assert [a.addr_spec for a in msg["Cc"].addresses] == list(CC)
    assert msg["Message-ID"] == "<client-123@pec.mittente.example>"
    assert msg["X-TipoRicevuta"] == "completa"
    assert _text(msg) == "Buongiorno,\nin allegato quanto richiesto.\nSaluti\n"
    assert _text(msg, "html") == "<p>Buongiorno</p>"
    allegati = {p.get_filename(): p for p in msg.iter_attachments()}
    assert allegati["preventivo.pdf"].get_content() == ALLEGATO_PDF[2]
    assert allegati["dichiarazione_conformità.txt"].get_payload(decode=True) == ALLEGATO_ACCENTATO[2]
    assert "filename*=utf-8''dichiarazione_conformit%C3%A0.txt" in ORIGINALE.decode()
    assert allegati["inoltro.eml"]["Content-Transfer-Encoding"] == "7bit"
    assert allegati["inoltro.eml"].get_content()["Subject"] == "Messaggio inoltrato"


def test_messaggio_originale_is_deterministic_and_derives_a_message_id():
    a = messaggio_originale(mittente=MITTENTE, destinatari=TO, oggetto="x", testo="y", data=INVIO)
    assert a == messaggio_originale(mittente=MITTENTE, destinatari=TO, oggetto="x", testo="y", data=INVIO)
    assert re.search(rb"^Message-ID: <[0-9a-f]+\.\d+@pec\.mittente\.example>\r$", a, re.MULTILINE)
    assert b"X-TipoRicevuta" not in a
    assert _parse(a).get_content_type() == "text/plain"


def test_nuovo_identificativo_shape():
    ident = nuovo_identificativo(ARUBA, INVIO, 7)
    assert re.fullmatch(r"opec\d+\.20240212093015\.\d{5}\.7\.1\.\d+@pec\.aruba\.it", ident)
    assert ident == nuovo_identificativo(ARUBA, INVIO, 7)
    assert ident != nuovo_identificativo(ARUBA, INVIO, 8)
    assert nuovo_identificativo(NAMIRIAL, INVIO, 7).endswith("@sicurezzapostale.it")


def test_aware_dates_and_signer_checks():
    with pytest.raises(ValueError):
        ricevuta(
            "accettazione", ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=datetime(2024, 1, 1)
        )
    with pytest.raises(ValueError):
        ricevuta(
            "accettazione",
            ORIGINALE,
            gestore=ARUBA,
            identificativo=IDENTIFICATIVO,
            data=DOPO,
            firma=Firma.per(NAMIRIAL),
        )
    with pytest.raises(ValueError):
        ricevuta("inesistente", ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=DOPO)
    with pytest.raises(ValueError):
        ricevuta(
            "accettazione", ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=DOPO, virus=True
        )
    with pytest.raises(ValueError):
        ricevuta(
            "accettazione", ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=DOPO, consegna=TO[0]
        )


# --- every kind ------------------------------------------------------------------------------


def _r(tipo, gestore=ARUBA, **kw):
    return ricevuta(
        tipo,
        ORIGINALE,
        gestore=gestore,
        identificativo=IDENTIFICATIVO,
        data=DOPO,
        destinatari=DESTINATARI,
        **kw,
    )


# (label, emitting gestore, build, X-Ricevuta, subject prefix, daticert errore, ricevuta tipo, virus)
RICEVUTE = [
    (
        "accettazione",
        ARUBA,
        lambda: _r("accettazione"),
        "accettazione",
        "ACCETTAZIONE: ",
        "nessuno",
        None,
        False,
    ),
    (
        "non-accettazione",
        ARUBA,
        lambda: _r("non-accettazione"),
        "non-accettazione",
        "AVVISO DI NON ACCETTAZIONE: ",
        "altro",
        None,
        False,
    ),
    (
        "non-accettazione-virus",
        ARUBA,
        lambda: _r("non-accettazione", virus=True),
        "non-accettazione",
        "AVVISO DI NON ACCETTAZIONE PER VIRUS: ",
        "virus",
        None,
        True,
    ),
    (
        "presa-in-carico",
        LEGALMAIL,
        lambda: _r("presa-in-carico", LEGALMAIL, ricezione=[TO[0]]),
        "presa-in-carico",
        "PRESA IN CARICO: ",
        "nessuno",
        None,
        False,
    ),
    (
        "consegna-completa",
        LEGALMAIL,
        lambda: _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0]),
        "avvenuta-consegna",
        "CONSEGNA: ",
        "nessuno",
        "completa",
        False,
    ),
    (
        "consegna-breve",
        LEGALMAIL,
        lambda: _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0], tipo_ricevuta="breve"),
        "avvenuta-consegna",
        "CONSEGNA: ",
        "nessuno",
        "breve",
        False,
    ),
    (
        "consegna-sintetica",
        LEGALMAIL,
        lambda: _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0], tipo_ricevuta="sintetica"),
        "avvenuta-consegna",
        "CONSEGNA: ",
        "nessuno",
        "sintetica",
        False,
    ),
    (
        "errore-consegna",
        LEGALMAIL,
        lambda: _r("errore-consegna", LEGALMAIL, consegna=TO[0], errore="no-dest"),
        "errore-consegna",
        "AVVISO DI MANCATA CONSEGNA: ",
        "no-dest",
        None,
        False,
    ),
    (
        "errore-consegna-virus",
        ARUBA,
        lambda: _r("errore-consegna", consegna=TO[0], virus=True),
        "errore-consegna",
        "AVVISO DI MANCATA CONSEGNA PER VIRUS: ",
        "virus",
        None,
        True,
    ),
    (
        "preavviso",
        ARUBA,
        lambda: _r("preavviso-errore-consegna", consegna=TO[1]),
        "preavviso-errore-consegna",
        "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ",
        "nessuno",
        None,
        False,
    ),
    (
        "rilevazione-virus",
        NAMIRIAL,
        lambda: _r("rilevazione-virus", NAMIRIAL, consegna=TO[1]),
        "rilevazione-virus",
        "PROBLEMA DI SICUREZZA: ",
        "virus",
        None,
        True,
    ),
]


@pytest.mark.parametrize(
    "label,gestore,build,tipo,prefisso,errore,ricevuta_tipo,virus", RICEVUTE, ids=[r[0] for r in RICEVUTE]
)
def test_ricevuta(label, gestore, build, tipo, prefisso, errore, ricevuta_tipo, virus):
    raw = build()
    msg = _common_checks(raw)
    con_postacert = ricevuta_tipo in ("completa", "breve")
    assert _layout(msg) == _layout_atteso(daticert_=True, postacert=con_postacert, legacy=gestore.x_pkcs7)
    assert msg.get_param("protocol") == (
        "application/x-pkcs7-signature" if gestore.x_pkcs7 else "application/pkcs7-signature"
    )

    assert msg["X-Ricevuta"] == tipo
    assert "X-Trasporto" not in msg
    assert msg["X-Riferimento-Message-ID"] == "<client-123@pec.mittente.example>"
    assert msg["From"] == gestore.indirizzo
    assert msg["Subject"] == prefisso + OGGETTO
    assert raw.partition(b"\r\n\r\n")[0].isascii()  # the non-ASCII subject is RFC 2047-encoded
    assert next(k for p, k in kinds.SUBJECT_PREFIXES if msg["Subject"].startswith(p)) == tipo
    assert msg["Message-ID"] != f"<{IDENTIFICATIVO}>"
    assert msg["Message-ID"].endswith(f"@{gestore.domain}>")
    assert "X-TipoRicevuta" not in msg
    assert (msg["X-VerificaSicurezza"] == "errore") is virus
    if tipo in ("presa-in-carico", "rilevazione-virus"):  # provider to provider
        assert msg["To"] == "posta-certificata@pec.aruba.it"
    else:
        assert msg["To"] == MITTENTE
    if tipo == "rilevazione-virus":
        assert msg["X-Mittente"] == MITTENTE

    record = _daticert(raw)
    assert record.tipo == tipo
    assert record.errore == errore
    assert record.mittente == MITTENTE and record.risposte == MITTENTE
    assert record.destinatari == DESTINATARI
    assert record.oggetto == OGGETTO
    assert record.gestore_emittente == gestore.name
    assert (record.giorno, record.ora, record.zona) == ("12/02/2024", "09:30:17", "+0100")
    assert record.timestamp == DOPO
    assert record.identificativo == IDENTIFICATIVO
    assert record.msgid == "<client-123@pec.mittente.example>"
    assert record.ricevuta == ricevuta_tipo
    per_destinatario = tipo in (
        "avvenuta-consegna",
        "errore-consegna",
        "preavviso-errore-consegna",
        "rilevazione-virus",
    )
    assert (record.consegna is not None) is per_destinatario
    assert record.ricezione == ((TO[0],) if tipo == "presa-in-carico" else ())
    if errore != "nessuno" or tipo == "preavviso-errore-consegna":
        assert re.match(r"[45]\.\d\.\d+ - .+ - .+", record.errore_esteso)
    else:
        assert record.errore_esteso is None
    if errore == "no-dest":
        assert record.errore_esteso == "5.1.1 - InfoCert S.p.A. - indirizzo non valido"

    testo = _text(msg)
    assert "Il giorno 12/02/2024 alle ore 09:30:17 (+0100)" in testo
    assert f"Identificativo del messaggio: {IDENTIFICATIVO}" in testo
    plain = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    assert plain.get_content_charset() == "iso-8859-1"
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert _part(msg, "daticert.xml")["Content-Transfer-Encoding"] == "base64"
    assert _part(msg, "daticert.xml").get_content_disposition() == "inline"


def test_ricevuta_consegna_completa_embeds_the_forwarded_original():
    raw = _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0])
    inner = _postacert(raw)
    expected = ORIGINALE.replace(
        b"Message-ID: <client-123@pec.mittente.example>\r\n",
        f"Message-ID: <{IDENTIFICATIVO}>\r\n"
        f"X-Riferimento-Message-ID: <client-123@pec.mittente.example>\r\n".encode(),
    )
    assert inner == expected


def test_ricevuta_accepts_the_postacert_form_too():
    postacert = _postacert(
        busta_trasporto(
            ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=INVIO, destinatari=DESTINATARI
        )
    )
    for tipo, extra in (("accettazione", {}), ("avvenuta-consegna", {"consegna": TO[0]})):
        a = _r(tipo, LEGALMAIL, **extra)
        b = ricevuta(
            tipo,
            postacert,
            gestore=LEGALMAIL,
            identificativo=IDENTIFICATIVO,
            data=DOPO,
            destinatari=DESTINATARI,
            **extra,
        )
        assert a == b


def test_ricevuta_defaults_read_from_the_original():
    raw = ricevuta(
        "avvenuta-consegna",
        _originale(tipo_ricevuta="breve"),
        gestore=LEGALMAIL,
        identificativo=IDENTIFICATIVO,
        data=DOPO,
    )
    record = _daticert(raw)
    assert record.consegna == TO[0]  # the first certified recipient
    assert record.ricevuta == "breve"  # from X-TipoRicevuta
    assert [d.address for d in record.destinatari] == [*TO, ESTERNO, *CC]
    presa = _daticert(
        ricevuta(
            "presa-in-carico",
            ORIGINALE,
            gestore=LEGALMAIL,
            identificativo=IDENTIFICATIVO,
            data=DOPO,
            destinatari=DESTINATARI,
        )
    )
    assert presa.ricezione == (*TO, *CC)
    assert ricevuta(
        "accettazione", ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=DOPO
    ) == ricevuta("accettazione", ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=DOPO)


def test_preavviso_12h_and_24h_texts():
    dodici = _text(_parse(_r("preavviso-errore-consegna", consegna=TO[0])))
    finale = _parse(
        _r(
            "preavviso-errore-consegna",
            consegna=TO[0],
            errore_esteso="5.4.1 - Aruba PEC S.p.A. - consegna non avvenuta entro 24 ore",
        )
    )
    assert "12 ore" in dodici
    assert "esito negativo" in _text(finale)
    assert finale["X-Ricevuta"] == "preavviso-errore-consegna"


# --- Cc recipients and breve receipts ----------------------------------------------------------


def test_cc_recipient_gets_sintetica_even_when_completa_was_asked():
    per_cc = _r("avvenuta-consegna", LEGALMAIL, consegna=CC[0])
    assert _daticert(per_cc).ricevuta == "sintetica"
    assert _postacert(per_cc) is None
    per_to = _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0])
    assert _daticert(per_to).ricevuta == "completa"
    assert _postacert(per_to) is not None
    forced = _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0], cc=True)
    assert _daticert(forced).ricevuta == "sintetica"
    assert _layout(_parse(forced)) == _layout_atteso(daticert_=True, postacert=False)
    breve_cc = _r("avvenuta-consegna", LEGALMAIL, consegna=CC[0], tipo_ricevuta="breve")
    assert _daticert(breve_cc).ricevuta == "sintetica"


def test_breve_replaces_every_named_part_with_its_sha1():
    raw = _r("avvenuta-consegna", LEGALMAIL, consegna=TO[0], tipo_ricevuta="breve")
    inner = _parse(_postacert(raw))
    original = email.message_from_bytes(ORIGINALE)

    # the structure is kept: same tree, named leaves became text/plain <name>.hash
    def shape(part):
        if part.get_content_maintype() == "multipart":
            return [shape(p) for p in part.get_payload()]
        return part.get_filename()

    assert shape(inner) == [
        [None, None],
        "preventivo.pdf.hash",
        "dichiarazione_conformità.txt.hash",
        "inoltro.eml.hash",
    ]
    assert shape(original) == [[None, None], "preventivo.pdf", "dichiarazione_conformità.txt", "inoltro.eml"]

    hashed = {p.get_filename(): p for p in inner.walk() if (p.get_filename() or "").endswith(".hash")}
    for part in original.walk():
        name = part.get_filename()
        if not name:
            continue
        if part.get_content_type() == "message/rfc822":
            # an attached message is replaced entirely: hash its bytes as transmitted
            start = ORIGINALE.index(b"\r\n\r\n", ORIGINALE.index(b"Content-Type: message/rfc822")) + 4
            encoded = ORIGINALE[start : ORIGINALE.index(b"\r\n--", start)]
        else:
            encoded = part.get_payload().encode("ascii")  # the base64 text, CRLFs included
        replacement = hashed[f"{name}.hash"]
        assert replacement.get_content_type() == "text/plain"
        assert replacement.get_content() == hashlib.sha1(encoded).hexdigest()
    # unnamed body parts are untouched, and the rewritten headers are kept
    assert _text(inner) == "Buongiorno,\nin allegato quanto richiesto.\nSaluti\n"
    assert inner["Message-ID"] == f"<{IDENTIFICATIVO}>"
    assert inner["X-Riferimento-Message-ID"] == "<client-123@pec.mittente.example>"
    assert b"%PDF" not in _postacert(raw) and b"Messaggio inoltrato" not in _postacert(raw)


def test_breve_keeps_a_signed_original_signature_part():
    firmato = busta_trasporto(
        ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=INVIO, destinatari=DESTINATARI
    )  # any multipart/signed message will do
    # the sender forwards that signed envelope as its own (outer headers of a client message)
    head = (
        f"From: {MITTENTE}\r\nTo: {TO[0]}\r\nSubject: inoltro firmato\r\n"
        "Message-ID: <firmato@pec.mittente.example>\r\n"
    ).encode()
    originale = (
        head
        + firmato.partition(b"\r\n\r\n")[0].split(b"MIME-Version: 1.0\r\n")[1]
        + b"\r\n\r\n"
        + firmato.partition(b"\r\n\r\n")[2]
    )
    raw = ricevuta(
        "avvenuta-consegna",
        originale,
        gestore=LEGALMAIL,
        identificativo=IDENTIFICATIVO,
        data=DOPO,
        tipo_ricevuta="breve",
    )
    inner = _parse(_postacert(raw))
    assert inner.get_content_type() == "multipart/signed"
    first, signature = inner.get_payload()
    names = [p.get_filename() for p in first.walk() if p.get_filename()]
    assert names == ["daticert.xml.hash", "postacert.eml.hash"]
    assert signature.get_filename() == "smime.p7s"  # left as it was
    assert signature.get_payload(decode=True) == _parse(firmato).get_payload()[1].get_payload(decode=True)


# --- envelopes ------------------------------------------------------------------------------------


def test_busta_trasporto():
    raw = busta_trasporto(
        ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=INVIO, destinatari=DESTINATARI
    )
    msg = _common_checks(raw)
    assert _layout(msg) == _layout_atteso(daticert_=True, postacert=True, legacy=True)  # ARUBA: older naming
    assert msg["X-Trasporto"] == "posta-certificata"
    assert "X-Ricevuta" not in msg
    assert msg["Subject"] == "POSTA CERTIFICATA: " + OGGETTO
    assert msg["Message-ID"] == f"<{IDENTIFICATIVO}>"
    assert msg["X-Riferimento-Message-ID"] == "<client-123@pec.mittente.example>"
    assert msg["X-TipoRicevuta"] == "completa"
    assert msg["From"].addresses[0].display_name == f"Per conto di: {MITTENTE}"
    assert msg["From"].addresses[0].addr_spec == "posta-certificata@pec.aruba.it"
    assert msg["Reply-To"] == MITTENTE
    assert [a.addr_spec for a in msg["To"].addresses] == [*TO, ESTERNO]
    assert [a.addr_spec for a in msg["Cc"].addresses] == list(CC)

    record = _daticert(raw)
    assert record.tipo == "posta-certificata" and record.errore == "nessuno"
    assert record.destinatari == DESTINATARI
    assert record.identificativo == IDENTIFICATIVO
    assert record.msgid == "<client-123@pec.mittente.example>"
    assert record.ricevuta == "completa"
    assert record.consegna is None and record.errore_esteso is None

    inner = _postacert(raw)
    assert inner.startswith(ORIGINALE.partition(b"Message-ID:")[0])
    assert inner.endswith(ORIGINALE.partition(b"\r\n\r\n")[2])
    assert _parse(inner)["Message-ID"] == f"<{IDENTIFICATIVO}>"
    assert _parse(inner)["X-Riferimento-Message-ID"] == "<client-123@pec.mittente.example>"
    assert "posta ordinaria" in _text(msg)  # the esterno recipient


def test_busta_trasporto_options():
    breve = busta_trasporto(
        _originale(tipo_ricevuta="breve"),
        gestore=SIMULATO,
        identificativo=IDENTIFICATIVO,
        data=INVIO,
        destinatari=DESTINATARI,
    )
    assert _parse(breve)["X-TipoRicevuta"] == "breve" and _daticert(breve).ricevuta == "breve"
    assert _parse(breve).get_param("protocol") == "application/pkcs7-signature"
    con_reply = _originale(message_id=None, tipo_ricevuta=None)
    con_reply = con_reply.replace(
        b"MIME-Version: 1.0\r\n", b"Reply-To: risposte@pec.mittente.example\r\nMIME-Version: 1.0\r\n", 1
    )
    raw = busta_trasporto(
        con_reply,
        gestore=SIMULATO,
        identificativo=IDENTIFICATIVO,
        data=INVIO,
        destinatari=DESTINATARI,
        tipo_ricevuta="sintetica",
    )
    assert _parse(raw)["Reply-To"] == "risposte@pec.mittente.example"
    assert _parse(raw)["X-TipoRicevuta"] == "sintetica"
    assert _daticert(raw).risposte == "risposte@pec.mittente.example"


def test_busta_anomalia():
    ricevuto = messaggio_originale(
        mittente="qualcuno@ordinaria.example",
        destinatari=[TO[0]],
        oggetto="Offerta speciale",
        testo="Non è PEC.\n",
        data=INVIO,
    )
    raw = busta_anomalia(ricevuto, gestore=LEGALMAIL, data=DOPO, motivo="Messaggio non certificato.")
    msg = _common_checks(raw)
    assert _layout(msg) == _layout_atteso(daticert_=False, postacert=True)
    assert _part(msg, "daticert.xml") is None
    assert msg["X-Trasporto"] == "errore"
    assert msg["Subject"] == "ANOMALIA MESSAGGIO: Offerta speciale"
    assert msg["Message-ID"] == _parse(ricevuto)["Message-ID"]  # inherited
    for absent in ("X-Ricevuta", "X-Riferimento-Message-ID", "X-TipoRicevuta", "X-VerificaSicurezza"):
        assert absent not in msg
    assert msg["From"].addresses[0].display_name == "Per conto di: qualcuno@ordinaria.example"
    assert msg["Reply-To"] == "qualcuno@ordinaria.example"
    assert _postacert(raw) == ricevuto  # the received message, unmodified
    assert "Messaggio non certificato." in _text(msg)


def test_busta_anomalia_tolerates_odd_input():
    raw = busta_anomalia(
        b"Subject: senza mittente\n\ncorpo con a capo unix\n",
        gestore=SIMULATO,
        data=DOPO,
        motivo="Formato non valido.",
    )
    msg = _common_checks(raw)
    assert msg["Subject"] == "ANOMALIA MESSAGGIO: senza mittente"
    assert _postacert(raw) == b"Subject: senza mittente\r\n\r\ncorpo con a capo unix\r\n"

    # raw 8-bit headers, as some ordinary mail arrives: copied byte for byte, part marked 8bit
    otto_bit = (
        b"From: Caf\xe8 <bar@ordinaria.example>\r\nTo: Jos\xe9 <" + TO[0].encode() + b">\r\n"
        b"Subject: prova\r\nMessage-ID: <x@ordinaria.example>\r\n\r\ncorpo\r\n"
    )
    raw = busta_anomalia(otto_bit, gestore=SIMULATO, data=DOPO, motivo="Formato non valido.")
    assert b"\r\nTo: Jos\xe9 <" + TO[0].encode() + b">\r\n" in raw.partition(b"\r\n\r\n")[0]
    assert b"Per conto di: bar@ordinaria.example" in raw
    assert _postacert(raw) == otto_bit
    assert (
        b'name="postacert.eml"\r\nContent-Disposition: inline; filename="postacert.eml"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n" in raw
    )


# --- signatures ------------------------------------------------------------------------------------

SIGNED = {
    "busta-aruba": lambda: busta_trasporto(
        ORIGINALE, gestore=ARUBA, identificativo=IDENTIFICATIVO, data=INVIO, destinatari=DESTINATARI
    ),
    "anomalia": lambda: busta_anomalia(ORIGINALE, gestore=SIMULATO, data=DOPO, motivo="prova"),
    **{label: build for label, _, build, *_ in RICEVUTE},
}


@pytest.fixture(scope="module")
def openssl():
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl binary not available")
    return path


def _verify(
    openssl, tmp_path, raw: bytes, ca_pem: bytes, command: str = "smime"
) -> subprocess.CompletedProcess:
    content, signature = _signed(raw)
    (tmp_path / "content.bin").write_bytes(content)
    (tmp_path / "smime.p7s").write_bytes(signature)
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    return subprocess.run(
        [
            openssl,
            command,
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "smime.p7s"),
            "-content",
            str(tmp_path / "content.bin"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-purpose",
            "any",
            "-out",
            str(tmp_path / "out.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("label", list(SIGNED))
def test_signature_verifies_over_the_exact_signed_bytes(openssl, tmp_path, label):
    raw = SIGNED[label]()
    result = _verify(openssl, tmp_path, raw, Firma.per(ARUBA).autorita.cert_pem)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.bin").read_bytes() == _signed(raw)[0]


def test_tampering_breaks_the_signature(openssl, tmp_path):
    raw = _r("accettazione")
    tampered = raw.replace(b"Ricevuta di accettazione\r\n", b"Ricevuta di accettazionE\r\n", 1)
    assert tampered != raw
    assert _verify(openssl, tmp_path, tampered, Firma.per(ARUBA).autorita.cert_pem).returncode != 0


def test_own_ca_and_cms_verify(openssl, tmp_path):
    ca = Autorita.nuova("CA del simulatore")
    ca_again = Autorita.da_pem(ca.cert_pem, ca.key_pem)
    assert ca_again.cert_pem == ca.cert_pem
    assert b"BEGIN CERTIFICATE" in ca.cert_pem and b"PRIVATE KEY" in ca.key_pem
    gestore = Gestore("Gestore di prova S.r.l.", "pec.prova.test")
    firma = Firma.per(gestore, ca_again)
    assert firma is Firma.per(gestore, ca_again)
    assert Firma.per(gestore) is not firma  # the default CA is another one
    from cryptography import x509

    san = firma.certificato.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["posta-certificata@pec.prova.test"]
    assert firma.certificato.issuer == ca.certificato.subject
    raw = ricevuta(
        "accettazione", ORIGINALE, gestore=gestore, identificativo=IDENTIFICATIVO, data=DOPO, firma=firma
    )
    assert _verify(openssl, tmp_path, raw, ca.cert_pem, "cms").returncode == 0
    assert _verify(openssl, tmp_path, raw, Firma.per(ARUBA).autorita.cert_pem, "cms").returncode != 0


# --- corpus ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campioni():
    builder.Firma.per(ARUBA)  # key generation is not what we time
    start = time.perf_counter()
    result = corpus(200, seed=1)
    return result, time.perf_counter() - start


def test_corpus_is_deterministic_and_fast(campioni):
    first, elapsed = campioni
    assert len(first) == 200
    assert elapsed < 20
    again = corpus(200, seed=1)
    assert [c.name for c in again] == [c.name for c in first]
    assert [c.raw for c in again] == [c.raw for c in first]
    assert [c.expected for c in again] == [c.expected for c in first]
    assert [c.raw for c in corpus(200, seed=2)] != [c.raw for c in first]
    assert len({c.name for c in first}) == 200


def test_corpus_covers_every_kind_and_receipt_type(campioni):
    first, _ = campioni
    found = {c.expected["kind"] for c in first}
    assert found == kinds.PEC_KINDS | {kinds.POSTA_ORDINARIA}
    consegne = {c.expected["receipt_type"] for c in first if c.expected["kind"] == kinds.AVVENUTA_CONSEGNA}
    assert consegne == {"completa", "breve", "sintetica"}
    subjects = [c.expected["subject"] for c in first]
    assert any(prefix in s for s in subjects for prefix in ("AVVISO DI NON ACCETTAZIONE PER VIRUS: ",))
    assert any(prefix in s for s in subjects for prefix in ("AVVISO DI MANCATA CONSEGNA PER VIRUS: ",))
    assert any(not s.isascii() for s in subjects)
    assert len({c.expected["provider"] for c in first} - {None}) >= 3
    counts = {k: sum(c.expected["kind"] == k for c in first) for k in found}
    usual = counts[kinds.ACCETTAZIONE] + counts[kinds.AVVENUTA_CONSEGNA] + counts[kinds.POSTA_CERTIFICATA]
    assert usual > 140
    sizes = [len(c.raw) for c in first]
    assert max(sizes) > 150_000 and min(sizes) < 5_000


def test_corpus_expected_matches_the_messages(campioni):
    first, _ = campioni
    for c in first:
        msg = _parse(c.raw)
        e = c.expected
        assert set(e) >= {
            "kind",
            "ref_message_id",
            "receipt_type",
            "provider",
            "sdi_type",
            "delivered_to",
            "error",
            "original_message_id",
            "identificativo",
        }
        assert e["sdi_type"] is None or (
            e["kind"] == kinds.POSTA_CERTIFICATA and e["receipt_type"] == "breve"
        )
        assert c.raw.count(b"\n") == c.raw.count(b"\r\n")
        assert msg["Message-ID"] == e["message_id"]
        assert msg["Subject"] == e["subject"]
        if e["kind"] == kinds.POSTA_ORDINARIA:
            assert "X-Ricevuta" not in msg and "X-Trasporto" not in msg
            continue
        assert msg.get_content_type() == "multipart/signed"
        assert (_postacert(c.raw) is not None) is e["postacert"]
        if e["kind"] == kinds.ANOMALIA:
            assert msg["X-Trasporto"] == "errore" and _part(msg, "daticert.xml") is None
            continue
        busta = e["kind"] == kinds.POSTA_CERTIFICATA
        assert (msg["X-Trasporto"] if busta else msg["X-Ricevuta"]) == e["kind"]
        riferimento = e["original_message_id"] if busta else e["ref_message_id"]
        assert riferimento is not None and (e["ref_message_id"] is None) is busta
        assert msg["X-Riferimento-Message-ID"] == riferimento
        record = _daticert(c.raw)
        assert record.tipo == e["kind"]
        assert record.msgid == riferimento
        assert record.identificativo == e["identificativo"]
        assert record.gestore_emittente == e["provider"]
        assert record.ricevuta == e["receipt_type"]
        assert record.consegna == e["delivered_to"]
        assert (record.errore if record.errore != "nessuno" else None) == e["error"]
        assert record.errore_esteso == e["error_detail"]


def test_corpus_signatures_verify(openssl, tmp_path, campioni):
    first, _ = campioni
    ca = Firma.per(ARUBA).autorita.cert_pem
    signed = [c for c in first if c.expected["kind"] != kinds.POSTA_ORDINARIA]
    for c in signed[:: max(1, len(signed) // 8)]:
        result = _verify(openssl, tmp_path, c.raw, ca)
        assert result.returncode == 0, (c.name, result.stderr)
