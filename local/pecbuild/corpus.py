"""A deterministic mixed mailbox: flows of messages and the receipts they cause (`corpus`), drawn
from one seeded random source, each sample with what a parser must find in it."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from html import escape as html_escape
from typing import Any

from local.pecbuild import rem_builder, sdi_builder
from local.pecbuild.builder import (
    ARUBA,
    GESTORI,
    LEGALMAIL,
    NAMIRIAL,
    SIMULATO,
    Gestore,
    _errore_esteso,
    _leggi,
    busta_anomalia,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
    ora_italiana,
    ricevuta,
)
from local.pecbuild.rem_builder import Deviations
from pecflow.pec import kinds
from pecflow.pec.daticert import Destinatario

# --- a deterministic mixed mailbox ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campione:
    """One corpus message and what a classifier should find in it.

    `expected` keys (the labels' convention): kind; ref_message_id (receipts: the Message-ID
    they are about); original_message_id (buste di trasporto: the sender's Message-ID);
    identificativo; receipt_type; provider (daticert gestore-emittente); sdi_type (the SdI
    file's code on envelopes from the SdI, else None); delivered_to; error (daticert errore unless "nessuno"); error_detail (errore-esteso);
    message_id and subject (of the sample itself); postacert (whether one is embedded).
    """

    name: str
    raw: bytes
    expected: dict = field(hash=False)


_ora_italiana = ora_italiana


@cache
def _allegati() -> tuple[tuple[str, str, bytes], ...]:
    """The attachment pool, made once: a few KB up to ~200 KB, mostly PDF-like blobs."""
    rnd = random.Random(6109)

    def pdf(size: int) -> bytes:
        return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rnd.randbytes(size - 24) + b"\n%%EOF\n"

    righe = "".join(f"{i:03d}. documento allegato alla pratica, pagina {i}\n" for i in range(1, 60))
    ordine = "".join(
        f'  <riga n="{i}"><codice>ART-{i:04d}</codice><quantita>{i % 7 + 1}</quantita></riga>\n'
        for i in range(1, 60)
    )
    return (
        ("elenco_documenti.txt", "text/plain", righe.encode()),
        (
            "ordine_0088.xml",
            "application/xml",
            f'<?xml version="1.0"?>\n<ordine>\n{ordine}</ordine>\n'.encode(),
        ),
        ("dichiarazione_conformità.pdf", "application/pdf", pdf(9_000)),
        ("fattura_2024_0117.pdf", "application/pdf", pdf(24_000)),
        ("visura_camerale.pdf", "application/pdf", pdf(48_000)),
        ("foto_cantiere.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rnd.randbytes(85_000)),
        ("preventivo_lavori.pdf", "application/pdf", pdf(120_000)),
        ("planimetria_piano_terra.pdf", "application/pdf", pdf(200_000)),
    )


_SOGGETTI = (
    "Richiesta documentazione pratica n. 4471",
    "Fattura n° 2024/117 – saldo lavori",
    "Sollecito pagamento scaduto",
    "Convocazione riunione di cantiere",
    "Comunicazione variazione IBAN",
    "Preventivo fornitura materiale elettrico",
    "Verbale dell'assemblea: approvazione bilancio",
    "Trasmissione contratto firmato",
    "Diffida ad adempiere",
    "Richiesta d'accesso agli atti",
    "Perché il DURC non è ancora arrivato?",
    "Conferma d'ordine n. 88",
    "Notifica avvio procedimento",
    "Offerta economica – gara servizi di pulizia",
)
_TESTI = (
    "Buongiorno,\n\ncon la presente trasmettiamo quanto in oggetto.\n\nCordiali saluti\n{firma}\n",
    (
        "Gentili signori,\n\nin riferimento alla vostra ultima comunicazione, vi chiediamo un riscontro "
        "entro dieci giorni lavorativi dalla ricezione della presente.\n\nDistinti saluti\n{firma}\n"
    ),
    (
        "Spett.le ditta,\n\nsi allega la documentazione richiesta. Restiamo a disposizione per "
        "qualsiasi chiarimento.\n\n{firma}\n"
    ),
)
_NOSTRE = ("protocollo@pec.costruzioni-alfa.example", "amministrazione@pec.costruzioni-alfa.example")
_CORRISPONDENTI = (
    ("ufficio.tecnico@pec.comune-esempio.example", LEGALMAIL),
    ("fornitori@pec.beta-impianti.example", NAMIRIAL),
    ("legale@pec.studio-gamma.example", ARUBA),
    ("contabilita@pec.delta-trasporti.example", SIMULATO),
    ("protocollo@pec.asl-esempio.example", LEGALMAIL),
    ("info@pec.epsilon-forniture.example", ARUBA),
    ("gare@pec.zeta-servizi.example", NAMIRIAL),
)
_ESTERNI = ("mario.bianchi@posta.example", "ordini@eta-commerciale.example")
_DOMINIO_INESISTENTE = "pec.dominio-inesistente.example"


@dataclass(frozen=True, slots=True)
class _Invio:
    """One submitted message of the corpus (its bytes are made on first use)."""

    mittente: str
    destinatari: tuple[Destinatario, ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    oggetto: str
    testo: str
    html: bool
    allegati: tuple[tuple[str, str, bytes], ...]
    tipo_ricevuta: str | None
    data: datetime
    gestore: Gestore
    identificativo: str

    @property
    def message_id(self) -> str:
        locale = hashlib.sha1(self.identificativo.encode()).hexdigest()[:20]
        return f"<{locale}@{self.mittente.split('@')[1]}>"

    def costruisci(self) -> bytes:
        return messaggio_originale(
            mittente=self.mittente,
            destinatari=self.to,
            cc=self.cc,
            oggetto=self.oggetto,
            testo=self.testo,
            html=f"<p>{html_escape(self.testo).replace(chr(10), '<br>')}</p>" if self.html else None,
            allegati=self.allegati,
            message_id=self.message_id,
            tipo_ricevuta=self.tipo_ricevuta,
            data=self.data,
        )


def _atteso(kind: str, **values: Any) -> dict:
    expected = {
        "kind": kind,
        "ref_message_id": None,
        "original_message_id": None,
        "identificativo": None,
        "receipt_type": None,
        "provider": None,
        "sdi_type": None,
        "delivered_to": None,
        "error": None,
        "error_detail": None,
        "message_id": None,
        "subject": None,
        "postacert": False,
    }
    return expected | values


_Voce = tuple[datetime, Callable[[], tuple[bytes, dict]]]  # a sample: its date and how to build it
_CASUALE: Any = object()  # "draw it at random"


class _Generatore:
    """Draws flows (a message and the samples it causes) from one seeded random source."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.base = datetime(2024, 1, 8, 7, 0, tzinfo=UTC)
        self.seq = 0
        self.gestore = self.rng.choice(GESTORI)  # the provider of the mailbox we model
        self.originali: dict[str, bytes] = {}  # identificativo -> submitted bytes, built once

    def originale(self, invio: _Invio) -> bytes:
        if invio.identificativo not in self.originali:
            self.originali[invio.identificativo] = invio.costruisci()
        return self.originali[invio.identificativo]

    def _invio(
        self,
        mittente: str,
        gestore: Gestore,
        to: Sequence[str],
        cc: Sequence[str] = (),
        esterni: Sequence[str] = (),
        tipo_ricevuta: str | None = None,
        allegati: bool = True,
    ) -> _Invio:
        self.seq += 1
        data = _ora_italiana(self.base + timedelta(seconds=self.rng.randrange(140 * 86400)))
        if allegati:
            # none or small files are far more common than the big ones
            quanti = self.rng.choices((0, 1, 2, 3), weights=(55, 30, 10, 5))[0]
            scelti = tuple(self.rng.choices(_allegati(), weights=(9, 8, 8, 7, 5, 3, 2, 1), k=quanti))
        else:
            scelti = ()
        firma = "Ufficio " + mittente.split("@")[0].replace(".", " ").title()
        return _Invio(
            mittente=mittente,
            destinatari=(
                *(Destinatario(a) for a in (*to, *cc)),
                *(Destinatario(a, "esterno") for a in esterni),
            ),
            to=(*to, *esterni),
            cc=tuple(cc),
            oggetto=self.rng.choice(_SOGGETTI),
            testo=self.rng.choice(_TESTI).format(firma=firma),
            html=self.rng.random() < 0.3,
            allegati=scelti,
            tipo_ricevuta=tipo_ricevuta,
            data=data,
            gestore=gestore,
            identificativo=nuovo_identificativo(gestore, data, self.seq),
        )

    def _tipo_ricevuta(self, tipo: str | None) -> str | None:
        if tipo is not _CASUALE:
            return tipo
        return self.rng.choices((None, "completa", "breve", "sintetica"), weights=(60, 20, 12, 8))[0]

    def _ricevuta(
        self,
        invio: _Invio,
        tipo: str,
        gestore: Gestore,
        ritardo: int,
        *,
        consegna: str | None = None,
        errore: str = "nessuno",
        errore_esteso: str | None = None,
        virus: bool = False,
    ) -> _Voce:
        data = invio.data + timedelta(seconds=ritardo)
        # the expected values come from the inputs and the rules, not from reading the output back
        if virus or tipo == kinds.RILEVAZIONE_VIRUS:
            errore = "virus"
        elif errore == "nessuno" and tipo in (kinds.NON_ACCETTAZIONE, kinds.ERRORE_CONSEGNA):
            errore = "altro"
        receipt_type = None
        if tipo == kinds.AVVENUTA_CONSEGNA:
            receipt_type = "sintetica" if consegna in invio.cc else invio.tipo_ricevuta or "completa"

        def costruisci() -> tuple[bytes, dict]:
            raw = ricevuta(
                tipo,
                self.originale(invio),
                gestore=gestore,
                identificativo=invio.identificativo,
                data=data,
                destinatari=invio.destinatari,
                consegna=consegna,
                errore=errore,
                errore_esteso=errore_esteso,
                virus=virus,
            )
            letto = _leggi(raw)
            return raw, _atteso(
                tipo,
                ref_message_id=invio.message_id,
                identificativo=invio.identificativo,
                receipt_type=receipt_type,
                provider=gestore.name,
                delivered_to=consegna,
                error=None if errore == "nessuno" else errore,
                error_detail=errore_esteso or _errore_esteso(tipo, errore, gestore),
                message_id=letto.message_id,
                subject=letto.oggetto,
                postacert=receipt_type in ("completa", "breve"),
            )

        return data, costruisci

    # each flow returns the samples it adds to the mailbox

    def invio(
        self, *, esito: str | None = None, tipo_ricevuta: str | None = _CASUALE, con_cc: bool | None = None
    ) -> list[_Voce]:
        """We send: accettazione, then per certified recipient a consegna or a failure notice."""
        rng = self.rng
        to = rng.sample([a for a, _ in _CORRISPONDENTI], rng.choices((1, 2, 3), weights=(75, 18, 7))[0])
        con_cc = rng.random() < 0.15 if con_cc is None else con_cc
        cc = [a for a, _ in _CORRISPONDENTI if a not in to][:1] if con_cc else []
        esterni = [rng.choice(_ESTERNI)] if rng.random() < 0.1 else []
        esiti = [
            esito
            or rng.choices(
                ("consegna", "no-dest", "no-dominio", "preavviso", "virus"), weights=(93, 3, 1, 2, 1)
            )[0]
            for _ in (*to, *cc)
        ]
        # a failing recipient gets an address that cannot be delivered
        indirizzi = []
        for address, e in zip((*to, *cc), esiti):
            local, _, domain = address.partition("@")
            indirizzi.append(
                {"no-dest": f"{local}.errato@{domain}", "no-dominio": f"{local}@{_DOMINIO_INESISTENTE}"}.get(
                    e, address
                )
            )
        invio = self._invio(
            rng.choice(_NOSTRE),
            self.gestore,
            indirizzi[: len(to)],
            indirizzi[len(to) :],
            esterni,
            self._tipo_ricevuta(tipo_ricevuta),
        )
        voci = [self._ricevuta(invio, kinds.ACCETTAZIONE, invio.gestore, 1)]
        for i, (corrispondente, address, e) in enumerate(zip((*to, *cc), indirizzi, esiti)):
            suo = next(g for a, g in _CORRISPONDENTI if a == corrispondente)
            if e == "consegna":
                voci.append(self._ricevuta(invio, kinds.AVVENUTA_CONSEGNA, suo, 2 + i, consegna=address))
            elif e in ("no-dest", "no-dominio"):
                # an unknown domain is found by the sender's provider, an unknown mailbox by the recipient's
                chi = invio.gestore if e == "no-dominio" else suo
                voci.append(
                    self._ricevuta(invio, kinds.ERRORE_CONSEGNA, chi, 2 + i, consegna=address, errore=e)
                )
            elif e == "virus":
                voci.append(
                    self._ricevuta(
                        invio, kinds.ERRORE_CONSEGNA, invio.gestore, 30 + i, consegna=address, virus=True
                    )
                )
            else:  # preavviso at 12 h, sometimes the final one at 24 h too
                voci.append(
                    self._ricevuta(
                        invio, kinds.PREAVVISO_ERRORE_CONSEGNA, invio.gestore, 12 * 3600, consegna=address
                    )
                )
                if rng.random() < 0.5:
                    voci.append(
                        self._ricevuta(
                            invio,
                            kinds.PREAVVISO_ERRORE_CONSEGNA,
                            invio.gestore,
                            24 * 3600,
                            consegna=address,
                            errore_esteso=f"5.4.1 - {invio.gestore.name} - consegna non avvenuta entro 24 ore",
                        )
                    )
        return voci

    def non_accettazione(self, *, virus: bool | None = None) -> list[_Voce]:
        virus = self.rng.random() < 0.3 if virus is None else virus
        invio = self._invio(self.rng.choice(_NOSTRE), self.gestore, [self.rng.choice(_CORRISPONDENTI)[0]])
        motivo = (
            None
            if virus
            else self.rng.choice(
                (
                    f"5.3.4 - {self.gestore.name} - dimensione del messaggio oltre il limite consentito",
                    f"5.7.0 - {self.gestore.name} - destinatari in copia nascosta non ammessi",
                )
            )
        )
        return [
            self._ricevuta(invio, kinds.NON_ACCETTAZIONE, self.gestore, 1, virus=virus, errore_esteso=motivo)
        ]

    def presa_in_carico(self) -> list[_Voce]:
        address, gestore = self.rng.choice(_CORRISPONDENTI)
        invio = self._invio(self.rng.choice(_NOSTRE), self.gestore, [address])
        return [self._ricevuta(invio, kinds.PRESA_IN_CARICO, gestore, 1)]

    def rilevazione_virus(self) -> list[_Voce]:
        address, gestore = self.rng.choice(_CORRISPONDENTI)
        invio = self._invio(self.rng.choice(_NOSTRE), self.gestore, [address])
        return [self._ricevuta(invio, kinds.RILEVAZIONE_VIRUS, gestore, 20, consegna=address)]

    def ricezione(self, *, tipo_ricevuta: str | None = _CASUALE) -> list[_Voce]:
        """A certified message reaches our mailbox in its busta di trasporto."""
        address, gestore = self.rng.choice(_CORRISPONDENTI)
        cc = [a for a, _ in _CORRISPONDENTI if a != address][:1] if self.rng.random() < 0.1 else []
        invio = self._invio(
            address, gestore, [self.rng.choice(_NOSTRE)], cc, tipo_ricevuta=self._tipo_ricevuta(tipo_ricevuta)
        )

        def costruisci() -> tuple[bytes, dict]:
            raw = busta_trasporto(
                self.originale(invio),
                gestore=gestore,
                identificativo=invio.identificativo,
                data=invio.data,
                destinatari=invio.destinatari,
            )
            return raw, _atteso(
                kinds.POSTA_CERTIFICATA,
                original_message_id=invio.message_id,
                identificativo=invio.identificativo,
                receipt_type=invio.tipo_ricevuta or "completa",
                provider=gestore.name,
                message_id=f"<{invio.identificativo}>",
                subject="POSTA CERTIFICATA: " + invio.oggetto,
                postacert=True,
            )

        return [(invio.data, costruisci)]

    def anomalia(self) -> list[_Voce]:
        """Ordinary mail reaching our PEC mailbox, delivered in a busta di anomalia."""
        invio = self._invio(
            self.rng.choice(_ESTERNI), self.gestore, [self.rng.choice(_NOSTRE)], allegati=False
        )
        motivo = self.rng.choice(
            (
                "Il messaggio non proviene da un gestore di posta certificata.",
                "La firma del gestore mittente non è valida.",
            )
        )
        data = invio.data + timedelta(seconds=3)

        def costruisci() -> tuple[bytes, dict]:
            raw = busta_anomalia(self.originale(invio), gestore=self.gestore, data=data, motivo=motivo)
            # the reason is only in the human text (no daticert), so nothing to expect from a parser
            return raw, _atteso(
                kinds.ANOMALIA,
                message_id=invio.message_id,
                subject="ANOMALIA MESSAGGIO: " + invio.oggetto,
                postacert=True,
            )

        return [(data, costruisci)]

    def sdi(self, *, codice: str | None = None) -> list[_Voce]:
        """The SdI delivers an invoice with its metadata (MT) or a notification about ours."""

        rng = self.rng
        codice = (
            codice
            or rng.choices(("MT", "RC", "NS", "MC", "NE", "DT", "AT"), weights=(40, 30, 8, 10, 5, 4, 3))[0]
        )
        dialetto = rng.choice(("pa", "b2b"))
        data = _ora_italiana(self.base + timedelta(seconds=rng.randrange(140 * 86400)))
        self.seq += 1
        seq = self.seq
        identificativo_sdi = str(7_000_000 + seq)
        noi = sdi_builder.Parte("IT", "01234567890", "Costruzioni Alfa S.r.l.")
        fornitore = sdi_builder.Parte("IT", f"{rng.randrange(10**10, 10**11)}", "Fornitore Beta S.p.A.")
        destinatario = rng.choice(_NOSTRE)

        def costruisci() -> tuple[bytes, dict]:
            if codice == "MT":
                nome = sdi_builder.nome_fattura(fornitore, f"{seq % 100000:05d}")
                documento = sdi_builder.fattura(
                    fornitore,
                    noi,
                    [
                        sdi_builder.Documento(
                            f"{seq}/2024", data.date().isoformat(), f"{rng.randrange(100, 90000)}.00"
                        )
                    ],
                )
                files = [
                    (
                        sdi_builder.nome_notifica(nome, "MT"),
                        sdi_builder.notifica(
                            "MT",
                            identificativo_sdi=identificativo_sdi,
                            nome_file=nome,
                            message_id=str(seq),
                            quando=data,
                            dialetto=dialetto,
                        ),
                    ),
                    (nome, documento),
                ]
            else:
                nome = sdi_builder.nome_fattura(noi, f"{seq % 100000:05d}")
                files = [
                    (
                        sdi_builder.nome_notifica(nome, codice),
                        sdi_builder.notifica(
                            codice,
                            identificativo_sdi=identificativo_sdi,
                            nome_file=nome,
                            message_id=str(seq),
                            quando=data,
                            dialetto=dialetto,
                            riferimento_fattura=(f"{seq}", "2024"),
                            pec_message_id=nuovo_identificativo(self.gestore, data, seq),
                        ),
                    )
                ]
            raw = sdi_builder.busta_sdi(
                files,
                identificativo_sdi=identificativo_sdi,
                codice=codice,
                destinatario=destinatario,
                data=data,
                seq=seq,
            )
            letto = _leggi(raw)
            identificativo = letto.message_id.strip("<>")
            return raw, _atteso(
                kinds.POSTA_CERTIFICATA,
                identificativo=identificativo,
                receipt_type="breve",
                provider=sdi_builder.SOGEI.name,
                sdi_type=codice,
                message_id=letto.message_id,
                subject=letto.oggetto,
                postacert=True,
                original_message_id=sdi_builder.message_id_sdi(identificativo_sdi, data, seq),
            )

        return [(data, costruisci)]

    def ordinaria(self) -> list[_Voce]:
        """Plain mail in the mailbox (e.g. the provider's own service notices)."""
        mittente = self.rng.choice((f"noreply@{self.gestore.domain}", *_ESTERNI))
        invio = self._invio(mittente, self.gestore, [self.rng.choice(_NOSTRE)], allegati=False)

        def costruisci() -> tuple[bytes, dict]:
            return self.originale(invio), _atteso(
                kinds.POSTA_ORDINARIA, message_id=invio.message_id, subject=invio.oggetto
            )

        return [(invio.data, costruisci)]


def corpus(n: int, *, seed: int = 0, sdi: bool = True) -> list[Campione]:
    """A deterministic mixed PEC mailbox of `n` messages, oldest first.

    Mostly accettazione / consegna receipts and incoming buste, some failures, a few of the
    rare kinds (non-accettazione, presa-in-carico, preavviso, virus notices, anomalia) and
    plain mail, from several gestori, and (unless `sdi` is False) envelopes from the SdI
    carrying invoices with their metadata or notifications. With n >= 30 every kind and
    receipt type is present.
    """
    gen = _Generatore(seed)
    # first the flows that guarantee coverage, then flows drawn in realistic proportions
    voci: list[_Voce] = [
        *gen.invio(esito="consegna", tipo_ricevuta="completa", con_cc=True),
        *gen.invio(esito="consegna", tipo_ricevuta="breve", con_cc=False),
        *gen.invio(esito="consegna", tipo_ricevuta="sintetica", con_cc=False),
        *gen.invio(esito="no-dest", tipo_ricevuta=None, con_cc=False),
        *gen.invio(esito="preavviso", tipo_ricevuta=None, con_cc=False),
        *gen.invio(esito="virus", tipo_ricevuta=None, con_cc=False),
        *gen.non_accettazione(virus=False),
        *gen.non_accettazione(virus=True),
        *gen.presa_in_carico(),
        *gen.rilevazione_virus(),
        *gen.ricezione(tipo_ricevuta="breve"),
        *gen.anomalia(),
        *gen.ordinaria(),
    ]
    if sdi:
        voci += [*gen.sdi(codice="MT"), *gen.sdi(codice="RC")]
    flussi = (
        gen.invio,
        gen.ricezione,
        gen.ordinaria,
        gen.anomalia,
        gen.non_accettazione,
        gen.presa_in_carico,
        gen.rilevazione_virus,
        gen.sdi,
    )
    pesi = (58, 24, 6, 3, 2, 1.5, 1.5, 4 if sdi else 0)
    while len(voci) < n:
        voci += gen.rng.choices(flussi, weights=pesi)[0]()
    ordinate = sorted(enumerate(voci[:n]), key=lambda iv: (iv[1][0], iv[0]))
    campioni = []
    for i, (_, (_, costruisci)) in enumerate(ordinate):
        raw, expected = costruisci()
        campioni.append(Campione(f"{i:05d}_{expected['kind']}.eml", raw, expected))
    return campioni


# --- REM (ETSI EN 319 532-4) -------------------------------------------------------------------

_REM_INVIO = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)


def _rem_originale() -> tuple[bytes, str]:
    """The submitted message every REM sample is about, and its Message-ID."""
    message_id = "<rem-prova-0001@rem.simulato.test>"
    raw = messaggio_originale(
        mittente="Ufficio Protocollo <protocollo@rem.simulato.test>",
        destinatari=["mario.rossi@rem.altro.test", "ufficio@pec.aruba.it"],
        oggetto="Convocazione assemblea – prova REM",
        testo="Si comunica la convocazione dell'assemblea.\n",
        message_id=message_id,
        data=_ora_italiana(_REM_INVIO),
    )
    return raw, message_id


def _rem_atteso(message_type: str, event: str, reason: str, ref: str | None, **values: Any) -> dict:
    kind = (rem_builder.RECEIPT_KINDS if message_type == rem_builder.RECEIPT else rem_builder.DISPATCH_KINDS)[
        event
    ]
    return {
        "kind": kind,
        "rem_message_type": message_type,
        "rem_event": event,
        "rem_reason": reason,
        "ref_message_id": ref,
        **values,
    }


def rem_corpus() -> list[Campione]:
    """Builder-made REM messages: a receipt for every event with every reason AgID's examples
    use, and both dispatches (SubmissionAcceptance, ReceivedFromNonERDS); each with what a
    classifier must find (kind, rem_message_type, rem_event, rem_reason, ref_message_id)."""
    raw, message_id = _rem_originale()
    quando = _ora_italiana(_REM_INVIO + timedelta(seconds=5))
    rem_id = rem_builder.rem_identifier(rem_builder.REM_SIMULATO, quando, "dispatch")
    campioni = [
        Campione(
            "rem_dispatch_SubmissionAcceptance.eml",
            rem_builder.rem_dispatch(raw, gestore=rem_builder.REM_SIMULATO, message_id=rem_id, data=quando),
            _rem_atteso(rem_builder.DISPATCH, "SubmissionAcceptance", "MessageAccepted", None),
        ),
        Campione(
            "rem_dispatch_SubmissionAcceptance.to_non_ERDS.eml",
            rem_builder.rem_dispatch(
                raw, gestore=rem_builder.REM_SIMULATO, message_id=rem_id, data=quando, to_non_erds=True
            ),
            _rem_atteso(rem_builder.DISPATCH, "SubmissionAcceptance", "MessageAccepted", None),
        ),
        Campione(
            "rem_dispatch_ReceivedFromNonERDS.eml",
            rem_builder.rem_dispatch(
                raw,
                gestore=rem_builder.REM_ALTRO,
                message_id=rem_id,
                data=quando,
                event="ReceivedFromNonERDS",
            ),
            _rem_atteso(rem_builder.DISPATCH, "ReceivedFromNonERDS", "MessageReceivedFromNonERDS", None),
        ),
    ]
    for event, spec in rem_builder.EVENTS.items():
        if event not in rem_builder.RECEIPT_KINDS:
            continue
        gestore = rem_builder.REM_ALTRO if spec.by_recipient_provider else rem_builder.REM_SIMULATO
        for reason in spec.reasons:
            code = rem_builder.REASONS[reason].code
            campioni.append(
                Campione(
                    f"rem_receipt_{event}.{code}.eml",
                    rem_builder.rem_receipt(
                        event,
                        raw,
                        gestore=gestore,
                        message_id=rem_id,
                        data=quando,
                        reason=reason,
                        recipient=None if event.startswith("Submission") else "mario.rossi@rem.altro.test",
                    ),
                    _rem_atteso(rem_builder.RECEIPT, event, reason, message_id),
                )
            )
    return campioni


def rem_robustness() -> list[Campione]:
    """Deliberately broken or unusual REM messages: broken evidence XML, missing parts (no
    evidence, no original, no introduction), huge evidence, an unknown event, a future
    REM-MetadataVersion, header and evidence disagreeing. `expected` says what must hold: the
    message is still recognised as REM (`rem_event` from the headers) and a problem is
    reported (`problem`: a word the problem's text is expected to name, or None when none need
    be); `kind` is None where the kind is the classifier's decision."""
    raw, message_id = _rem_originale()
    quando = _ora_italiana(_REM_INVIO + timedelta(seconds=5))
    g = rem_builder.REM_SIMULATO
    rem_id = rem_builder.rem_identifier(g, quando, "dispatch")

    def ricevuta(deviations: Deviations, **kw: Any) -> bytes:
        return rem_builder.rem_receipt(
            kw.pop("event", "SubmissionAcceptance"),
            raw,
            gestore=g,
            message_id=rem_id,
            data=quando,
            deviations=deviations,
            **kw,
        )

    def spedizione(deviations: Deviations) -> bytes:
        return rem_builder.rem_dispatch(raw, gestore=g, message_id=rem_id, data=quando, deviations=deviations)

    def atteso(mt: str, event: str, reason: str, problem: str | None) -> dict:
        ref = message_id if mt == rem_builder.RECEIPT else None
        if event in (rem_builder.RECEIPT_KINDS if mt == rem_builder.RECEIPT else rem_builder.DISPATCH_KINDS):
            return _rem_atteso(mt, event, reason, ref, problem=problem)
        return {
            "kind": None,
            "rem_message_type": mt,
            "rem_event": event,
            "rem_reason": reason,
            "ref_message_id": ref,
            "problem": problem,
        }

    R, D = rem_builder.RECEIPT, rem_builder.DISPATCH
    casi = [
        (
            "broken_evidence_xml",
            ricevuta(Deviations(evidence=b"<?xml version='1.0'?><tns:Evidence><unclosed>")),
            atteso(R, "SubmissionAcceptance", "MessageAccepted", "evidence"),
        ),
        (
            "evidence_not_xml",
            ricevuta(Deviations(evidence=b"\x00\x01 not xml at all \xff")),
            atteso(R, "SubmissionAcceptance", "MessageAccepted", "evidence"),
        ),
        (
            "no_evidence",
            ricevuta(Deviations(omit=frozenset({"evidence"}))),
            atteso(R, "SubmissionAcceptance", "MessageAccepted", "evidence"),
        ),
        (
            "no_introduction",
            ricevuta(Deviations(omit=frozenset({"introduction"}))),
            atteso(R, "SubmissionAcceptance", "MessageAccepted", None),  # harmless: the evidence has it all
        ),
        (
            "dispatch_no_original",
            spedizione(Deviations(omit=frozenset({"original"}))),
            atteso(D, "SubmissionAcceptance", "MessageAccepted", "original"),
        ),
        (
            "dispatch_no_evidence",
            spedizione(Deviations(omit=frozenset({"evidence"}))),
            atteso(D, "SubmissionAcceptance", "MessageAccepted", "evidence"),
        ),
        (
            "huge_evidence",
            ricevuta(Deviations(evidence_padding=4 * 1024 * 1024)),
            atteso(R, "SubmissionAcceptance", "MessageAccepted", "evidence"),
        ),
        (
            "unknown_event",
            ricevuta(Deviations(strict=False), event="ContentHandover"),
            atteso(R, "ContentHandover", "MessageAccepted", "event"),
        ),
        (
            "future_metadata_version",
            ricevuta(Deviations(metadata_version="EN31953203V020101")),
            atteso(R, "SubmissionAcceptance", "MessageAccepted", "version"),
        ),
        (
            "header_evidence_event_disagree",
            ricevuta(
                Deviations(header_event="ContentConsignment", header_reason="MessageConsignedToRecipient"),
                event="ContentConsignmentFailure",
                reason="MessageNotConsignedForQuota",
                recipient="mario.rossi@rem.altro.test",
            ),
            # which one wins is the classifier's decision: only the problem is expected
            atteso(R, "ContentConsignment", "MessageConsignedToRecipient", "evidence") | {"kind": None},
        ),
    ]
    return [Campione(f"rem_robustness_{name}.eml", data, exp) for name, data, exp in casi]
