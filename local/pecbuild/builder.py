"""PEC message builder: byte-exact RFC 822 messages of every PEC kind, as a provider writes them.

Used for the repository's own fixtures, the benchmark corpus and the provider simulator.
Layout and headers follow RFC 6109 (see docs/pec-format.md) and the structure of real samples;
every human-readable text here is our own wording.

Every provider message is

    multipart/signed (application/pkcs7-signature or the older x-pkcs7-signature naming)
    ├── multipart/mixed                       <- signed, byte for byte, exactly as sent
    │   ├── multipart/alternative (text/plain iso-8859-1 QP + text/html)
    │   ├── application/xml daticert.xml      (not in the busta di anomalia)
    │   └── message/rfc822 postacert.eml      (buste; completa and breve consegna receipts)
    └── application/pkcs7-signature smime.p7s (detached, DER, base64)

All output uses CRLF line endings. Given the same inputs (and the same signer, which is
cached per gestore in-process) every function returns the same bytes.
SdI envelopes are ordinary buste: build the original with `messaggio_originale(allegati=...)`
carrying the SdI files, then wrap it with `busta_trasporto`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email import quoprimime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import encode_rfc2231, format_datetime, formataddr, getaddresses
from functools import cache, lru_cache
from html import escape as html_escape
from typing import Any

from pecflow.pec import daticert, kinds
from pecflow.pec.daticert import Daticert, Destinatario, normalise_msgid

__all__ = [
    "ARUBA",
    "GESTORI",
    "LEGALMAIL",
    "NAMIRIAL",
    "SIMULATO",
    "Autorita",
    "Destinatario",
    "Firma",
    "Gestore",
    "busta_anomalia",
    "busta_trasporto",
    "messaggio_originale",
    "nuovo_identificativo",
    "ora_italiana",
    "ricevuta",
]

CRLF = b"\r\n"


# --- providers and their signatures -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gestore:
    """A PEC provider: `name` is its daticert gestore-emittente, `domain` its mail domain."""

    name: str
    domain: str
    x_pkcs7: bool = False  # signs with the older "application/x-pkcs7-signature" naming

    @property
    def indirizzo(self) -> str:
        """The provider's system address: From of every receipt and envelope."""
        return f"posta-certificata@{self.domain}"


ARUBA = Gestore("Aruba PEC S.p.A.", "pec.aruba.it", x_pkcs7=True)
NAMIRIAL = Gestore("Namirial S.p.A.", "sicurezzapostale.it", x_pkcs7=True)
LEGALMAIL = Gestore("InfoCert S.p.A.", "legalmail.it")
SIMULATO = Gestore("pecflow Gestore Simulato S.p.A.", "pec.simulato.test")
GESTORI = (ARUBA, NAMIRIAL, LEGALMAIL, SIMULATO)

# Signatures are RSA PKCS#1 v1.5 without signed attributes: RSA is what PEC providers use,
# and with no signingTime attribute the same content gives the same signature bytes,
# so fixtures and the corpus are reproducible within a process.
_RSA_BITS = 2048
_VALIDITA = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2045, 1, 1, tzinfo=UTC))


def _nome(**attrs: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    oids = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def _serial(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:16], "big") >> 1


@dataclass(frozen=True, slots=True, eq=False)
class Autorita:
    """A certification authority for test signatures (real providers chain to AgID's CA)."""

    certificato: Any  # cryptography x509.Certificate
    chiave: Any  # its private key

    @classmethod
    def nuova(cls, nome: str = "pecflow CA di prova") -> Autorita:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import rsa

        chiave = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        soggetto = _nome(C="IT", O="pecflow", CN=nome)
        certificato = (
            x509.CertificateBuilder()
            .subject_name(soggetto)
            .issuer_name(soggetto)
            .public_key(chiave.public_key())
            .serial_number(_serial(nome))
            .not_valid_before(_VALIDITA[0])
            .not_valid_after(_VALIDITA[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(chiave.public_key()), critical=False)
            .sign(chiave, hashes.SHA256())
        )
        return cls(certificato, chiave)

    @classmethod
    def da_pem(cls, cert_pem: bytes, key_pem: bytes, password: bytes | None = None) -> Autorita:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return cls(x509.load_pem_x509_certificate(cert_pem), load_pem_private_key(key_pem, password))

    @property
    def cert_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificato.public_bytes(Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        return self.chiave.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@cache
def _autorita_predefinita() -> Autorita:
    return Autorita.nuova()


_FIRME: dict[tuple[Gestore, int], Firma] = {}


@dataclass(frozen=True, slots=True, eq=False)
class Firma:
    """A provider's signing certificate (subjectAltName posta-certificata@domain) and key."""

    gestore: Gestore
    autorita: Autorita
    certificato: Any
    chiave: Any

    @classmethod
    def per(cls, gestore: Gestore, autorita: Autorita | None = None) -> Firma:
        """The signer of `gestore` under `autorita` (default: a test CA), made once per process."""
        autorita = autorita or _autorita_predefinita()
        key = (gestore, id(autorita))  # the cached Firma keeps `autorita` alive, so its id stays unique
        if key not in _FIRME:
            _FIRME[key] = cls._nuova(gestore, autorita)
        return _FIRME[key]

    @classmethod
    def _nuova(cls, gestore: Gestore, autorita: Autorita) -> Firma:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID

        chiave = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        certificato = (
            x509.CertificateBuilder()
            .subject_name(_nome(C="IT", O=gestore.name, CN=f"Posta Certificata {gestore.name}"))
            .issuer_name(autorita.certificato.subject)
            .public_key(chiave.public_key())
            .serial_number(_serial(gestore.domain))
            .not_valid_before(_VALIDITA[0])
            .not_valid_after(_VALIDITA[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(gestore.indirizzo)]), critical=False)
            .sign(autorita.chiave, hashes.SHA256())
        )
        return cls(gestore, autorita, certificato, chiave)

    @property
    def cert_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificato.public_bytes(Encoding.PEM)

    def sign(self, content: bytes) -> bytes:
        """DER PKCS#7 detached signature of exactly `content` (no canonicalisation)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(content)
            .add_signer(self.certificato, self.chiave, hashes.SHA256())
            .sign(
                Encoding.DER,
                [
                    pkcs7.PKCS7Options.DetachedSignature,
                    pkcs7.PKCS7Options.Binary,
                    pkcs7.PKCS7Options.NoAttributes,
                ],
            )
        )


def _firma(gestore: Gestore, firma: Firma | None) -> Firma:
    firma = firma or Firma.per(gestore)
    if firma.gestore != gestore:
        raise ValueError(f"signer belongs to {firma.gestore.domain}, not {gestore.domain}")
    return firma


# --- identifiers and dates ----------------------------------------------------------------


def _aware(when: datetime) -> datetime:
    if when.utcoffset() is None:
        raise ValueError("PEC dates need a time zone (an aware datetime)")
    return when


def nuovo_identificativo(gestore: Gestore, when: datetime, seq: int) -> str:
    """A provider message identifier, `opec<n>.<yyyymmddhhmmss>.<pid>.<n>.<n>.<n>@<domain>`.

    Deterministic from its inputs and unique per (gestore, when, seq): `seq` appears verbatim.
    """
    build = int(hashlib.sha1(gestore.domain.encode()).hexdigest()[:6], 16) % 30000 + 200
    h = int(hashlib.sha1(f"{gestore.domain}|{when.isoformat()}|{seq}".encode()).hexdigest()[:12], 16)
    return f"opec{build}.{when:%Y%m%d%H%M%S}.{h % 100000:05d}.{seq}.1.{h // 100000 % 1000}@{gestore.domain}"


def _quando(when: datetime) -> str:
    giorno, ora, zona = daticert.data_fields(when)
    return f"Il giorno {giorno} alle ore {ora} ({zona})"


# --- MIME writing ---------------------------------------------------------------------------


def _crlf(raw: bytes) -> bytes:
    return raw if raw.count(b"\n") == raw.count(b"\r\n") else re.sub(rb"\r?\n", b"\r\n", raw)


def _parametro(param: str, value: str) -> str:
    """A `name="value"` MIME parameter; RFC 2231 (`name*=utf-8''...`) when not ASCII."""
    if value.isascii():
        return f'{param}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
    return f"{param}*={encode_rfc2231(value, 'utf-8')}"


_Q_SICURI = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _parole_codificate(text: str) -> list[str]:
    """RFC 2047 Q encoded-words (utf-8) for `text`, each at most 75 characters, split
    between characters. Decoders drop the folding whitespace between them."""
    words, current = [], ""
    for char in text:
        piece = "".join(
            chr(b) if b in _Q_SICURI else "_" if b == 0x20 else f"={b:02X}" for b in char.encode()
        )
        if len(current) + len(piece) > 75 - len("=?utf-8?q??="):
            words.append(current)
            current = ""
        current += piece
    return [f"=?utf-8?q?{w}?=" for w in [*words, current] if w]


def _oggetto(value: str) -> str:
    """The Subject field: leading ASCII words stay readable (so "CONSEGNA: " prefixes can be
    seen in the raw header), the rest from the first non-ASCII word on is RFC 2047-encoded;
    folded at spaces, never before the first word."""
    words = value.split(" ")
    first = next((i for i, w in enumerate(words) if not w.isascii()), len(words))
    tokens = words[:first] + (_parole_codificate(" ".join(words[first:])) if first < len(words) else [])
    line, lines = "Subject:", []
    for i, token in enumerate(tokens):
        if i and token and len(line) + 1 + len(token) > 78:
            lines.append(line)
            line = ""
        line += " " + token
    return "\r\n".join([*lines, line])


def _indirizzi(name: str, addresses: Sequence[str]) -> str:
    """An address-list field, display names RFC 2047-encoded, folded between addresses."""
    items = [formataddr(pair, charset="utf-8") for pair in getaddresses(list(addresses))]
    lines, line = [], f"{name}: "
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) > 77 and line.strip() != f"{name}:":
            lines.append(line.rstrip())
            line = " "
        line += piece + " "
    lines.append(line.rstrip())
    return "\r\n".join(lines)


def _per_conto_di(mittente: str, gestore: Gestore) -> str:
    nome = mittente.replace("\\", "\\\\").replace('"', '\\"')
    line = f'From: "Per conto di: {nome}" <{gestore.indirizzo}>'
    return line if len(line) <= 78 else line.replace('" <', '"\r\n <', 1)


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


# the corpus attaches the same few blobs thousands of times: encode each once
_base64_allegato = lru_cache(maxsize=32)(_base64)


def _qp(text: str, charset: str, errors: str) -> bytes:
    latin = text.encode(charset, errors).decode("latin-1")
    return quoprimime.body_encode(latin, maxlinelen=76, eol="\r\n").encode("ascii")


def _entita(campi: Sequence[str | bytes], corpo: bytes) -> bytes:
    """A MIME entity: header fields (without line ends; bytes when copied raw), blank line, body."""
    return b"".join((c if isinstance(c, bytes) else c.encode("ascii")) + CRLF for c in campi) + CRLF + corpo


def _confine(seme: str, contenuti: Sequence[bytes], forma: Callable[[str], str]) -> str:
    """A boundary derived from `seme` that occurs in none of `contenuti`."""
    n = 0
    while True:
        boundary = forma(hashlib.sha1(f"{seme}|{n}".encode()).hexdigest())
        if not any(boundary.encode() in c for c in contenuti):
            return boundary
        n += 1


def _multipart(sottotipo: str, parti: Sequence[bytes], boundary: str) -> tuple[str, bytes]:
    """(Content-Type value, body) of a multipart whose parts are complete entities."""
    b = boundary.encode("ascii")
    corpo = b"".join(b"--" + b + CRLF + p + CRLF for p in parti) + b"--" + b + b"--" + CRLF
    return f'multipart/{sottotipo};\r\n boundary="{boundary}"', corpo


# --- reading the messages we certify or wrap ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Letto:
    """A message split into raw header fields and body, with the values the builder needs."""

    campi: tuple[tuple[str, bytes], ...]  # (lower-case name, raw field with folding and CRLF)
    corpo: bytes
    mittente: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    risposte: str
    oggetto: str
    message_id: str | None
    riferimento: str | None
    tipo_ricevuta: str | None

    def ereditati(self, *names: str) -> list[bytes]:
        """The raw fields called `names`, in that order, to copy unmodified (folding included)."""
        return [raw.removesuffix(CRLF) for name in names for n, raw in self.campi if n == name]

    def intero(self) -> bytes:
        return b"".join(raw for _, raw in self.campi) + CRLF + self.corpo


def _dividi(raw: bytes) -> tuple[tuple[tuple[str, bytes], ...], bytes]:
    """(header fields, body) of an entity with CRLF line ends."""
    if raw.startswith(CRLF):
        return (), raw[2:]
    head, sep, corpo = raw.partition(b"\r\n\r\n")
    if not sep:  # headers only
        head, corpo = raw.removesuffix(CRLF), b""
    if not head:
        return (), corpo
    campi: list[list[bytes]] = []
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"\t") and campi:
            campi[-1].append(line)
        else:
            campi.append([line])
    return tuple(
        (
            lines[0].split(b":", 1)[0].strip().lower().decode("ascii", "replace") if b":" in lines[0] else "",
            CRLF.join(lines) + CRLF,
        )
        for lines in campi
    ), corpo


def _valore(raw: bytes) -> str:
    """A raw header field's value, unfolded."""
    return re.sub(r"\r\n(?=[ \t])", "", raw.split(b":", 1)[1].decode("utf-8", "replace")).strip()


def _decodifica(value: str | None) -> str:
    """RFC 2047 encoded-words decoded (left as they are when broken)."""
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _leggi(raw: bytes) -> _Letto:
    campi, corpo = _dividi(_crlf(raw))

    def valori(name: str) -> list[str]:
        return [_valore(r) for n, r in campi if n == name]

    def indirizzi(name: str) -> tuple[str, ...]:
        return tuple(a for _, a in getaddresses(valori(name)) if a)

    def primo(name: str) -> str | None:
        return next(iter(valori(name)), None)

    mittente = next(iter(indirizzi("from")), "")
    tipo = (primo("x-tiporicevuta") or "").lower()
    return _Letto(
        campi=campi,
        corpo=corpo,
        mittente=mittente,
        to=indirizzi("to"),
        cc=indirizzi("cc"),
        risposte=next(iter(indirizzi("reply-to")), mittente),
        oggetto=_decodifica(primo("subject")),
        message_id=normalise_msgid(primo("message-id")),
        riferimento=normalise_msgid(primo("x-riferimento-message-id")),
        tipo_ricevuta=tipo if tipo in daticert.TIPI_RICEVUTA else None,
    )


def _inoltrato(orig: _Letto, identificativo: str) -> bool:
    """True when `orig` is already the postacert.eml form of the message `identificativo`."""
    return orig.riferimento is not None and orig.message_id == f"<{identificativo}>"


def _riferimento(orig: _Letto, identificativo: str) -> str:
    """The sender's original Message-ID (the identificativo when the original had none)."""
    if _inoltrato(orig, identificativo):
        return orig.riferimento
    return orig.message_id or f"<{identificativo}>"


def _postacert(orig: _Letto, identificativo: str) -> bytes:
    """The original as the sender's provider forwards it: Message-ID replaced by the
    identificativo, the client's Message-ID kept in X-Riferimento-Message-ID."""
    if _inoltrato(orig, identificativo):
        return orig.intero()
    nuovi = (
        f"Message-ID: <{identificativo}>\r\n"
        f"X-Riferimento-Message-ID: {_riferimento(orig, identificativo)}\r\n"
    )
    campi = [raw for name, raw in orig.campi if name != "message-id"]
    at = next((i for i, (name, _) in enumerate(orig.campi) if name == "message-id"), len(orig.campi))
    campi.insert(at, nuovi.encode("ascii"))
    return b"".join(campi) + CRLF + orig.corpo


# --- breve receipts: attachments replaced by their SHA-1 -------------------------------------


def _mime(campi: Sequence[tuple[str, bytes]]) -> Message:
    msg = Message()
    for name, raw in campi:
        if name in ("content-type", "content-disposition"):
            msg[name] = _valore(raw)
    return msg


def _hash_part(nome: str, contenuto: bytes) -> bytes:
    nome = f"{nome}.hash"
    return _entita(
        [
            f'Content-Type: text/plain; charset="us-ascii";\r\n {_parametro("name", nome)}',
            f"Content-Disposition: attachment;\r\n {_parametro('filename', nome)}",
            "Content-Transfer-Encoding: 7bit",
        ],
        hashlib.sha1(contenuto).hexdigest().encode("ascii"),
    )


def _breve_parte(parte: bytes) -> bytes:
    if not parte:
        return parte
    campi, corpo = _dividi(parte)
    msg = _mime(campi)
    nome = _decodifica(msg.get_filename())
    if msg.get_content_type() == "message/rfc822":  # attached messages go entirely
        return _hash_part(nome or "messaggio.eml", corpo)
    if nome:
        return _hash_part(nome, corpo)
    if msg.get_content_maintype() == "multipart":
        return b"".join(raw for _, raw in campi) + CRLF + _breve_multipart(corpo, msg)
    return parte


def _breve_multipart(corpo: bytes, msg: Message) -> bytes:
    boundary = msg.get_boundary()
    if not boundary:
        return corpo
    b = re.escape(boundary.encode("utf-8", "replace"))
    delim = re.compile(rb"(?:^|\r\n)--" + b + rb"(--)?[ \t]*(?=\r\n|$)")
    # S/MIME originals (RFC 6109 §3.3.2.2): only the signed first part changes, the signature stays
    solo_prima = msg.get_content_type() == "multipart/signed"
    out, prec = [], None
    for indice, match in enumerate(delim.finditer(corpo)):
        if prec is None:
            out.append(corpo[: match.end()])
        else:
            parte = corpo[prec.end() + 2 : match.start()]
            out.append(CRLF + (_breve_parte(parte) if indice == 1 or not solo_prima else parte))
            out.append(corpo[match.start() : match.end()])
        prec = match
        if match.group(1):
            break
    if prec is None:
        return corpo
    out.append(corpo[prec.end() :])
    return b"".join(out)


def _breve(postacert: bytes) -> bytes:
    campi, corpo = _dividi(postacert)
    msg = _mime(campi)
    if msg.get_content_maintype() != "multipart":
        return postacert
    return b"".join(raw for _, raw in campi) + CRLF + _breve_multipart(corpo, msg)


# --- the signed provider message -----------------------------------------------------------------


def _alternativa(titolo: str, righe: Sequence[str], seme: str) -> bytes:
    testo = f"{titolo}\n\n" + "\n".join(righe) + "\n"
    corpo_html = "<br>\n".join(html_escape(r) for r in righe)
    pagina = (
        f"<html>\n<head><title>{html_escape(titolo)}</title></head>\n<body>\n"
        f"<h3>{html_escape(titolo)}</h3>\n<hr>\n<p>\n{corpo_html}\n</p>\n</body>\n</html>\n"
    )
    parti = [
        _entita(
            [
                'Content-Type: text/plain; charset="iso-8859-1"',
                "Content-Disposition: inline",
                "Content-Transfer-Encoding: quoted-printable",
            ],
            _qp(testo, "iso-8859-1", "replace"),
        ),
        _entita(
            [
                'Content-Type: text/html; charset="iso-8859-1"',
                "Content-Disposition: inline",
                "Content-Transfer-Encoding: quoted-printable",
            ],
            _qp(pagina, "iso-8859-1", "xmlcharrefreplace"),
        ),
    ]
    boundary = _confine(seme + "|alt", parti, lambda h: f"----------=_{h[:24]}")
    tipo, corpo = _multipart("alternative", parti, boundary)
    return _entita([f"Content-Type: {tipo}", "Content-Transfer-Encoding: binary"], corpo)


def _parte_daticert(record: Daticert) -> bytes:
    return _entita(
        [
            'Content-Type: application/xml; name="daticert.xml"',
            'Content-Disposition: inline; filename="daticert.xml"',
            "Content-Transfer-Encoding: base64",
        ],
        _base64(daticert.render(record)),
    )


def _parte_postacert(raw: bytes) -> bytes:
    return _entita(
        [
            'Content-Type: message/rfc822; name="postacert.eml"',
            'Content-Disposition: inline; filename="postacert.eml"',
            f"Content-Transfer-Encoding: {'7bit' if raw.isascii() else '8bit'}",
        ],
        raw,
    )


def _messaggio_firmato(
    campi: Sequence[str | bytes], parti: Sequence[bytes], firma: Firma, seme: str
) -> bytes:
    """Header fields + multipart/signed: the multipart/mixed of `parti` is built once, with
    CRLF, and exactly those bytes are signed and placed in the message."""
    tipo, corpo = _multipart(
        "mixed", parti, _confine(seme + "|mixed", parti, lambda h: f"----------=_{h[:28]}")
    )
    firmato = _entita(
        [f"Content-Type: {tipo}", "Content-Transfer-Encoding: binary", "MIME-Version: 1.0"], corpo
    )
    protocollo = "application/x-pkcs7-signature" if firma.gestore.x_pkcs7 else "application/pkcs7-signature"
    p7s = _entita(
        [
            f'Content-Type: {protocollo}; name="smime.p7s"',
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="smime.p7s"',
        ],
        _base64(firma.sign(firmato)),
    )
    b = _confine(seme + "|signed", [firmato, p7s], lambda h: "----" + h[:32].upper()).encode("ascii")
    return _entita(
        [
            *campi,
            "MIME-Version: 1.0",
            (
                f'Content-Type: multipart/signed; protocol="{protocollo}"; micalg="sha-256";'
                f'\r\n boundary="{b.decode()}"'
            ),
        ],
        b"This is an S/MIME signed message\r\n\r\n--"
        + b
        + CRLF
        + firmato
        + b"\r\n--"
        + b
        + CRLF
        + p7s
        + b"\r\n--"
        + b
        + b"--"
        + CRLF,
    )


def _elenco(destinatari: Sequence[Destinatario]) -> list[str]:
    tipo = {"certificato": "posta certificata", "esterno": "posta ordinaria"}
    return [f"{d.address} ({tipo.get(d.tipo, d.tipo)})" for d in destinatari]


# --- what a user submits -------------------------------------------------------------------------


def messaggio_originale(
    *,
    mittente: str,
    destinatari: Sequence[str],
    oggetto: str,
    testo: str,
    html: str | None = None,
    cc: Sequence[str] = (),
    allegati: Sequence[tuple[str, str, bytes]] = (),
    message_id: str | None = None,
    tipo_ricevuta: str | None = None,
    data: datetime | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> bytes:
    """A message as a mail client submits it to the provider (an answer names the message it
    answers in `in_reply_to` and the conversation in `references`).

    `allegati` are (filename, content type, content) triples, sent base64 (message/rfc822 ones
    as they are); this is also the hook for SdI files. Without `message_id` one is derived
    from the inputs; without `data` it is now.
    """
    data = _aware(data or datetime.now(UTC).astimezone())
    if tipo_ricevuta is not None and tipo_ricevuta not in daticert.TIPI_RICEVUTA:
        raise ValueError(f"unknown tipo_ricevuta {tipo_ricevuta!r}")
    seme = "|".join([mittente, *destinatari, *cc, oggetto, data.isoformat(), testo])
    if message_id is None:
        dominio = getaddresses([mittente])[0][1].rpartition("@")[2] or "localhost"
        message_id = f"<{hashlib.sha1(seme.encode()).hexdigest()[:24]}.{int(data.timestamp())}@{dominio}>"
    message_id = normalise_msgid(message_id) or ""

    def confine(n: int, parti: Sequence[bytes]) -> str:
        return _confine(f"{seme}|{n}", parti, lambda h: f"==============={int(h[:15], 16):019d}==")

    def testo_utf8(sottotipo: str, text: str) -> bytes:
        return _entita(
            [
                f'Content-Type: text/{sottotipo}; charset="utf-8"',
                "Content-Transfer-Encoding: quoted-printable",
            ],
            _qp(text.replace("\r\n", "\n"), "utf-8", "strict"),
        )

    corpo = testo_utf8("plain", testo)
    if html is not None:
        pagina = testo_utf8("html", html)
        tipo, corpo_alt = _multipart("alternative", [corpo, pagina], confine(1, [corpo, pagina]))
        corpo = _entita([f"Content-Type: {tipo}"], corpo_alt)
    if allegati:
        parti = [corpo]
        for nome, ctype, contenuto in allegati:
            # an attached message travels as it is: message/rfc822 allows no base64 (RFC 2046 §5.2.1)
            if ctype.lower() == "message/rfc822":
                contenuto = _crlf(contenuto)
                codifica = "7bit" if contenuto.isascii() else "8bit"
            else:
                codifica, contenuto = "base64", _base64_allegato(contenuto)
            parti.append(
                _entita(
                    [
                        f"Content-Type: {ctype};\r\n {_parametro('name', nome)}",
                        f"Content-Disposition: attachment;\r\n {_parametro('filename', nome)}",
                        f"Content-Transfer-Encoding: {codifica}",
                    ],
                    contenuto,
                )
            )
        tipo, corpo_misto = _multipart("mixed", parti, confine(2, parti))
        corpo = _entita([f"Content-Type: {tipo}"], corpo_misto)

    campi = [f"Date: {format_datetime(data)}", _indirizzi("From", [mittente]), _indirizzi("To", destinatari)]
    if cc:
        campi.append(_indirizzi("Cc", cc))
    campi += [_oggetto(oggetto), f"Message-ID: {message_id}"]
    if in_reply_to:
        campi.append(f"In-Reply-To: {in_reply_to}")
    if references:
        campi.append("References: " + "\r\n ".join(references))
    if tipo_ricevuta:
        campi.append(f"X-TipoRicevuta: {tipo_ricevuta}")
    campi.append("MIME-Version: 1.0")
    return "".join(f"{c}\r\n" for c in campi).encode("ascii") + corpo


# --- envelopes -------------------------------------------------------------------------------------


def busta_trasporto(
    originale: bytes,
    *,
    gestore: Gestore,
    identificativo: str,
    data: datetime,
    destinatari: Sequence[Destinatario],
    tipo_ricevuta: str | None = None,
    firma: Firma | None = None,
) -> bytes:
    """The busta di trasporto the sender's provider delivers (RFC 6109 §3.1.5).

    `originale` is the message as submitted; `destinatari` say which are certificato/esterno.
    """
    _aware(data)
    firma = _firma(gestore, firma)
    orig = _leggi(originale)
    tipo_ricevuta = tipo_ricevuta or orig.tipo_ricevuta or "completa"
    if tipo_ricevuta not in daticert.TIPI_RICEVUTA:
        raise ValueError(f"unknown tipo_ricevuta {tipo_ricevuta!r}")
    riferimento = _riferimento(orig, identificativo)
    giorno, ora, zona = daticert.data_fields(data)
    record = Daticert(
        tipo=kinds.POSTA_CERTIFICATA,
        mittente=orig.mittente,
        destinatari=tuple(destinatari),
        risposte=orig.risposte,
        oggetto=orig.oggetto,
        gestore_emittente=gestore.name,
        giorno=giorno,
        ora=ora,
        zona=zona,
        identificativo=identificativo,
        msgid=riferimento,
        ricevuta=tipo_ricevuta,
    )
    righe = [
        f'{_quando(data)} il messaggio "{orig.oggetto}" è stato inviato da "{orig.mittente}"',
        "ed indirizzato a:",
        *_elenco(destinatari),
        "",
        "Il messaggio originale è allegato nel file postacert.eml;",
        "i dati di certificazione sono nel file daticert.xml.",
        f"Identificativo del messaggio: {identificativo}",
    ]
    # Received, Return-Path, To, Cc and Reply-To come unmodified from the original (§3.1.5)
    campi = [
        *orig.ereditati("received", "return-path"),
        f"Date: {format_datetime(data)}",
        _per_conto_di(orig.mittente, gestore),
        *orig.ereditati("to", "cc"),
        _oggetto("POSTA CERTIFICATA: " + orig.oggetto),
        f"Message-ID: <{identificativo}>",
        *(orig.ereditati("reply-to") or [f"Reply-To: {orig.mittente}"]),
        "X-Trasporto: posta-certificata",
        f"X-Riferimento-Message-ID: {riferimento}",
        f"X-TipoRicevuta: {tipo_ricevuta}",
    ]
    parti = [
        _alternativa("Messaggio di posta certificata", righe, identificativo),
        _parte_daticert(record),
        _parte_postacert(_postacert(orig, identificativo)),
    ]
    return _messaggio_firmato(campi, parti, firma, identificativo)


def busta_anomalia(
    ricevuto: bytes, *, gestore: Gestore, data: datetime, motivo: str, firma: Firma | None = None
) -> bytes:
    """The busta di anomalia (RFC 6109 §3.2.2): the received message, unmodified, with a text
    saying why it could not be certified. No daticert; the Message-ID is the received one."""
    _aware(data)
    firma = _firma(gestore, firma)
    orig = _leggi(ricevuto)
    destinatari = [Destinatario(a) for a in orig.to + orig.cc]
    righe = [
        f'{_quando(data)} è stato ricevuto il messaggio "{orig.oggetto}"',
        f'proveniente da "{orig.mittente}"',
        "ed indirizzato a:",
        *(d.address for d in destinatari),
        "",
        "I dati del messaggio non sono stati certificati per il seguente motivo:",
        motivo,
        "",
        "Il messaggio ricevuto è allegato nel file postacert.eml.",
    ]

    # Received, Return-Path, To, Cc, Message-ID and Reply-To come unmodified (§3.2.2)
    campi = [
        *orig.ereditati("received", "return-path"),
        f"Date: {format_datetime(data)}",
        _per_conto_di(orig.mittente, gestore),
        *orig.ereditati("to", "cc", "message-id"),
        _oggetto("ANOMALIA MESSAGGIO: " + orig.oggetto),
        *(orig.ereditati("reply-to") or [f"Reply-To: {orig.mittente}"]),
        "X-Trasporto: errore",
    ]
    seme = f"{orig.message_id}|{data.isoformat()}|anomalia"
    parti = [_alternativa("Anomalia del messaggio", righe, seme), _parte_postacert(orig.intero())]
    return _messaggio_firmato(campi, parti, firma, seme)


# --- receipts and notices ------------------------------------------------------------------------------

_OGGETTI = {
    (kinds.ACCETTAZIONE, False): "ACCETTAZIONE: ",
    (kinds.NON_ACCETTAZIONE, False): "AVVISO DI NON ACCETTAZIONE: ",
    (kinds.NON_ACCETTAZIONE, True): "AVVISO DI NON ACCETTAZIONE PER VIRUS: ",
    (kinds.PRESA_IN_CARICO, False): "PRESA IN CARICO: ",
    (kinds.AVVENUTA_CONSEGNA, False): "CONSEGNA: ",
    (kinds.ERRORE_CONSEGNA, False): "AVVISO DI MANCATA CONSEGNA: ",
    (kinds.ERRORE_CONSEGNA, True): "AVVISO DI MANCATA CONSEGNA PER VIRUS: ",
    (kinds.PREAVVISO_ERRORE_CONSEGNA, False): "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ",
    (kinds.RILEVAZIONE_VIRUS, True): "PROBLEMA DI SICUREZZA: ",
}
_PER_DESTINATARIO = (
    kinds.AVVENUTA_CONSEGNA,
    kinds.ERRORE_CONSEGNA,
    kinds.PREAVVISO_ERRORE_CONSEGNA,
    kinds.RILEVAZIONE_VIRUS,
)


def _errore_esteso(tipo: str, errore: str, gestore: Gestore) -> str | None:
    """A default errore-esteso in the usual `<enhanced code> - <gestore> - <text>` form."""
    if tipo == kinds.PREAVVISO_ERRORE_CONSEGNA:
        return f"4.4.7 - {gestore.name} - consegna non confermata entro 12 ore"
    if tipo not in (kinds.NON_ACCETTAZIONE, kinds.ERRORE_CONSEGNA, kinds.RILEVAZIONE_VIRUS):
        return None
    return {
        "no-dest": f"5.1.1 - {gestore.name} - indirizzo non valido",
        "no-dominio": f"5.1.2 - {gestore.name} - dominio non gestito",
        "virus": f"5.7.1 - {gestore.name} - rilevato contenuto pericoloso",
        "altro": f"5.7.0 - {gestore.name} - "
        + ("messaggio non conforme" if tipo == kinds.NON_ACCETTAZIONE else "errore di consegna"),
    }.get(errore)


def _testo_ricevuta(
    tipo: str, virus: bool, ricevuta_tipo: str | None, orig: _Letto, data: datetime, record: Daticert
) -> tuple[str, list[str]]:
    """(title, lines) of the human-readable text of a receipt or notice."""
    quando, oggetto, mittente = _quando(data), orig.oggetto, orig.mittente
    verso = f'il messaggio "{oggetto}" proveniente da "{mittente}"'
    a_lui = f'ed indirizzato a "{record.consegna}"'
    causa = record.errore_esteso or "errore non specificato"
    if tipo == kinds.ACCETTAZIONE:
        titolo, righe = (
            "Ricevuta di accettazione",
            [
                f"{quando} {verso}",
                "ed indirizzato a:",
                *_elenco(record.destinatari),
                "è stato accettato dal sistema ed inoltrato ai destinatari.",
            ],
        )
    elif tipo == kinds.NON_ACCETTAZIONE:
        titolo = "Avviso di non accettazione" + (" per virus" if virus else "")
        problema = "un problema di sicurezza" if virus else "un problema che ne impedisce l'accettazione"
        righe = [
            f'{quando} nel messaggio "{oggetto}" proveniente da "{mittente}"',
            "ed indirizzato a:",
            *_elenco(record.destinatari),
            f"è stato rilevato {problema}: {causa}.",
            "Il messaggio non è stato accettato.",
        ]
    elif tipo == kinds.PRESA_IN_CARICO:
        titolo, righe = (
            "Ricevuta di presa in carico",
            [
                f"{quando} {verso}",
                "ed indirizzato a:",
                *record.ricezione,
                "è stato preso in carico dal gestore di destinazione.",
            ],
        )
    elif tipo == kinds.AVVENUTA_CONSEGNA:
        titolo = {
            "completa": "Ricevuta di avvenuta consegna",
            "breve": "Ricevuta breve di avvenuta consegna",
            "sintetica": "Ricevuta sintetica di avvenuta consegna",
        }[ricevuta_tipo or "completa"]
        righe = [f"{quando} {verso}", a_lui, "è stato posto nella casella di destinazione."]
        if ricevuta_tipo == "completa":
            righe.append("Il messaggio originale è allegato nel file postacert.eml.")
        elif ricevuta_tipo == "breve":
            righe.append(
                "Il messaggio originale è allegato nel file postacert.eml; "
                "i suoi allegati sono sostituiti dalle rispettive impronte (file .hash)."
            )
    elif tipo == kinds.ERRORE_CONSEGNA:
        titolo = "Avviso di mancata consegna" + (" per virus" if virus else "")
        problema = "un problema di sicurezza" if virus else "un errore"
        righe = [
            f'{quando} nel messaggio "{oggetto}" proveniente da "{mittente}"',
            a_lui,
            f"è stato rilevato {problema}: {causa}.",
            "Il messaggio non è stato consegnato.",
        ]
    elif tipo == kinds.PREAVVISO_ERRORE_CONSEGNA:
        titolo = "Avviso di mancata consegna per superamento del tempo massimo"
        if causa.startswith("5."):  # the 24 h notice: the transmission is over
            esito = [
                "non è stato consegnato entro 24 ore dall'invio.",
                "La trasmissione si considera conclusa con esito negativo.",
            ]
        else:
            esito = [
                "non è stato ancora consegnato nelle prime 12 ore dall'invio.",
                "Se la consegna non sarà confermata nelle prossime 12 ore,",
                "riceverete un ulteriore avviso.",
            ]
        righe = [f"{quando} {verso}", a_lui, *esito, f"Dettaglio: {causa}."]
    else:  # rilevazione-virus
        titolo, righe = (
            "Avviso di rilevazione virus",
            [
                f'{quando} nel messaggio "{oggetto}" proveniente da "{mittente}"',
                a_lui,
                f"è stato rilevato un problema di sicurezza: {causa}.",
                "Il messaggio non è stato inoltrato al destinatario.",
            ],
        )
    righe += ["", f"Identificativo del messaggio: {record.identificativo}"]
    return titolo, righe


def ricevuta(
    tipo: str,
    originale: bytes,
    *,
    gestore: Gestore,
    identificativo: str,
    data: datetime,
    destinatari: Sequence[Destinatario] | None = None,
    consegna: str | None = None,
    ricezione: Sequence[str] = (),
    errore: str = "nessuno",
    errore_esteso: str | None = None,
    tipo_ricevuta: str | None = None,
    virus: bool = False,
    cc: bool = False,
    firma: Firma | None = None,
) -> bytes:
    """A receipt or notice (`tipo` is its X-Ricevuta value) about `originale`.

    `originale` is the message as the user submitted it, or the postacert.eml taken from its
    busta; sender, recipients, subject, Message-ID and X-TipoRicevuta are read from it.
    `gestore` is the emitting provider, `identificativo` the PEC id of the original message.
    `destinatari` defaults to the original's To and Cc, all certificato; `consegna` (for the
    per-recipient kinds) to the first certificato recipient; `ricezione` (presa-in-carico) to
    every certificato recipient. Failures default to errore "altro" (or "virus" when `virus`)
    with a matching errore-esteso. A consegna for a Cc recipient (`cc`, or the address is only
    in the original's Cc) is sintetica whatever type was asked (RFC 6109 §3.3.2).
    """
    if tipo not in kinds.RICEVUTE:
        raise ValueError(f"unknown receipt kind {tipo!r}")
    _aware(data)
    firma = _firma(gestore, firma)
    virus = virus or tipo == kinds.RILEVAZIONE_VIRUS
    if (tipo, virus) not in _OGGETTI:
        raise ValueError(f"{tipo} has no virus variant")
    if consegna is not None and tipo not in _PER_DESTINATARIO:
        raise ValueError(f"{tipo} names no <consegna> recipient")
    if ricezione and tipo != kinds.PRESA_IN_CARICO:
        raise ValueError("only presa-in-carico lists <ricezione> recipients")
    if (tipo_ricevuta is not None or cc) and tipo != kinds.AVVENUTA_CONSEGNA:
        raise ValueError("tipo_ricevuta and cc apply to avvenuta-consegna only")
    if errore not in daticert.ERRORI:
        raise ValueError(f"unknown errore {errore!r}")

    orig = _leggi(originale)
    if destinatari is None:
        destinatari = [Destinatario(a) for a in orig.to + orig.cc]
    destinatari = tuple(destinatari)
    certificati = [d.address for d in destinatari if d.tipo == "certificato"]
    if tipo in _PER_DESTINATARIO:
        consegna = consegna or next(iter(certificati), None)
        if consegna is None:
            raise ValueError(f"{tipo} needs a consegna recipient")
    if tipo == kinds.PRESA_IN_CARICO:
        ricezione = tuple(ricezione) or tuple(certificati)
    if virus:
        errore = "virus"
    elif errore == "nessuno" and tipo in (kinds.NON_ACCETTAZIONE, kinds.ERRORE_CONSEGNA):
        errore = "altro"
    errore_esteso = errore_esteso or _errore_esteso(tipo, errore, gestore)

    ricevuta_tipo = None
    if tipo == kinds.AVVENUTA_CONSEGNA:
        ricevuta_tipo = tipo_ricevuta or orig.tipo_ricevuta or "completa"
        if ricevuta_tipo not in daticert.TIPI_RICEVUTA:
            raise ValueError(f"unknown tipo_ricevuta {tipo_ricevuta!r}")
        in_to = {a.lower() for a in orig.to}
        if cc or (consegna.lower() in {a.lower() for a in orig.cc} and consegna.lower() not in in_to):
            ricevuta_tipo = "sintetica"

    riferimento = _riferimento(orig, identificativo)
    giorno, ora, zona = daticert.data_fields(data)
    record = Daticert(
        tipo=tipo,
        errore=errore,
        mittente=orig.mittente,
        destinatari=destinatari,
        risposte=orig.risposte,
        oggetto=orig.oggetto,
        gestore_emittente=gestore.name,
        giorno=giorno,
        ora=ora,
        zona=zona,
        identificativo=identificativo,
        msgid=riferimento,
        ricevuta=ricevuta_tipo,
        consegna=consegna,
        ricezione=tuple(ricezione),
        errore_esteso=errore_esteso,
    )
    seq = int(
        hashlib.sha1(
            f"{tipo}|{identificativo}|{consegna}|{errore_esteso}|{data.isoformat()}".encode()
        ).hexdigest()[:6],
        16,
    )
    message_id = nuovo_identificativo(gestore, data, seq)
    # presa in carico and rilevazione virus go provider to provider: to the service mailbox of
    # the sender's provider, whose domain ends the identificativo it assigned
    provider_to_provider = tipo in (kinds.PRESA_IN_CARICO, kinds.RILEVAZIONE_VIRUS)
    campi = [
        f"Date: {format_datetime(data)}",
        f"From: {gestore.indirizzo}",
        f"To: posta-certificata@{identificativo.rpartition('@')[2]}"
        if provider_to_provider
        else f"To: {orig.mittente}",
        _oggetto(_OGGETTI[tipo, virus] + orig.oggetto),
        f"Message-ID: <{message_id}>",
        f"X-Ricevuta: {tipo}",
        f"X-Riferimento-Message-ID: {riferimento}",
    ]
    if virus:
        campi.append("X-VerificaSicurezza: errore")
    if tipo == kinds.RILEVAZIONE_VIRUS:
        campi.append(f"X-Mittente: {orig.mittente}")

    titolo, righe = _testo_ricevuta(tipo, virus, ricevuta_tipo, orig, data, record)
    parti = [_alternativa(titolo, righe, message_id), _parte_daticert(record)]
    if ricevuta_tipo in ("completa", "breve"):
        postacert = _postacert(orig, identificativo)
        parti.append(_parte_postacert(_breve(postacert) if ricevuta_tipo == "breve" else postacert))
    return _messaggio_firmato(campi, parti, firma, message_id)


def ora_italiana(utc: datetime) -> datetime:
    """Italian legal time (CET/CEST, EU rule) as a fixed-offset aware datetime: the time
    providers write in receipts (daticert data/ora/zona)."""

    def ultima_domenica(mese: int) -> datetime:
        fine = datetime(utc.year, mese + 1, 1, 1, tzinfo=UTC) - timedelta(days=1)
        return fine - timedelta(days=(fine.weekday() + 1) % 7)

    estate = ultima_domenica(3) <= utc < ultima_domenica(10)
    return utc.astimezone(timezone(timedelta(hours=2 if estate else 1)))
