"""SdI files and the PEC envelopes that carry them, built by pecflow itself.

Used for the repo's own fixtures, the benchmark corpus and the simulated SdI of the local
stack: an incoming invoice (FatturaPA XML, optionally signed as `.xml.p7m`) with its MT
metadata, and every notification type, in the PA or the B2B dialect. Layouts follow
MessaggiTypes_v1.1 and the observed B2B variants (docs/pec-format.md, "SdI e-invoicing over PEC").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from local.pecbuild import builder

PA = "http://www.fatturapa.gov.it/sdi/messaggi/v1.0"
B2B = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fattura/messaggi/v1.0"
FATTURE = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"
SOGEI = builder.Gestore("Sogei SpA", "pcert.sogei.it", x_pkcs7=True)

# code -> (PA root, B2B root)
RADICI = {
    "RC": ("RicevutaConsegna", "RicevutaConsegna"),
    "NS": ("NotificaScarto", "RicevutaScarto"),
    "MC": ("NotificaMancataConsegna", "RicevutaImpossibilitaRecapito"),
    "NE": ("NotificaEsito", "NotificaEsito"),
    "DT": ("NotificaDecorrenzaTermini", "NotificaDecorrenzaTermini"),
    "AT": ("AttestazioneTrasmissioneFattura", "AttestazioneTrasmissioneFattura"),
    "MT": ("MetadatiInvioFile", "FileMetadati"),
    "EC": ("NotificaEsitoCommittente", "NotificaEsitoCommittente"),
    "SE": ("ScartoEsitoCommittente", "ScartoEsitoCommittente"),
}
# the envelope subject the SdI uses for each file it sends
TESTI_OGGETTO = {
    "RC": "Ricevuta di consegna",
    "NS": "Notifica di scarto",
    "MC": "Notifica di mancata consegna",
    "NE": "Notifica di esito",
    "DT": "Notifica di decorrenza termini",
    "AT": "Attestazione di avvenuta trasmissione",
    "MT": "Invio File",
    "SE": "Scarto esito committente",
    "EC": "Esito committente",
}


@dataclass(frozen=True, slots=True)
class Parte:
    """A party of an invoice: partita IVA (IT + 11 digits) and its name."""

    id_paese: str
    id_codice: str
    denominazione: str


@dataclass(frozen=True, slots=True)
class Documento:
    """One FatturaElettronicaBody."""

    numero: str
    data: str  # YYYY-MM-DD
    importo: str  # ImportoTotaleDocumento, e.g. "1220.00"
    tipo: str = "TD01"
    divisa: str = "EUR"
    descrizione: str = "Servizi professionali"
    scadenze: tuple[
        tuple[str, str], ...
    ] = ()  # DettaglioPagamento: (DataScadenzaPagamento, ImportoPagamento)


def _x(tag: str, value: str) -> str:
    return f"<{tag}>{escape(value)}</{tag}>"


def nome_fattura(cedente: Parte, progressivo: str, *, p7m: bool = False) -> str:
    return f"{cedente.id_paese}{cedente.id_codice}_{progressivo}.xml" + (".p7m" if p7m else "")


def fattura(
    cedente: Parte,
    cessionario: Parte,
    documenti: Sequence[Documento],
    *,
    versione: str = "FPR12",
    codice_destinatario: str = "0000000",
    progressivo: str = "00001",
) -> bytes:
    """A FatturaPA document (FPR12 between businesses, FPA12 to a public administration)."""
    bodies = []
    for doc in documenti:
        imponibile = f"{float(doc.importo) / 1.22:.2f}"
        imposta = f"{float(doc.importo) - float(imponibile):.2f}"
        bodies.append(
            "<FatturaElettronicaBody><DatiGenerali><DatiGeneraliDocumento>"
            + _x("TipoDocumento", doc.tipo)
            + _x("Divisa", doc.divisa)
            + _x("Data", doc.data)
            + _x("Numero", doc.numero)
            + _x("ImportoTotaleDocumento", doc.importo)
            + "</DatiGeneraliDocumento></DatiGenerali><DatiBeniServizi><DettaglioLinee>"
            + _x("NumeroLinea", "1")
            + _x("Descrizione", doc.descrizione)
            + _x("PrezzoUnitario", imponibile)
            + _x("PrezzoTotale", imponibile)
            + _x("AliquotaIVA", "22.00")
            + "</DettaglioLinee><DatiRiepilogo>"
            + _x("AliquotaIVA", "22.00")
            + _x("ImponibileImporto", imponibile)
            + _x("Imposta", imposta)
            + "</DatiRiepilogo></DatiBeniServizi>"
            + _pagamento(doc.scadenze)
            + "</FatturaElettronicaBody>"
        )

    def anagrafica(parte: Parte, ruolo: str) -> str:
        sede = (
            "<Sede><Indirizzo>Via Roma 1</Indirizzo><CAP>00100</CAP><Comune>Roma</Comune>"
            "<Nazione>IT</Nazione></Sede>"
        )
        regime = _x("RegimeFiscale", "RF01") if ruolo == "CedentePrestatore" else ""
        return (
            f"<{ruolo}><DatiAnagrafici><IdFiscaleIVA>{_x('IdPaese', parte.id_paese)}"
            f"{_x('IdCodice', parte.id_codice)}</IdFiscaleIVA><Anagrafica>"
            f"{_x('Denominazione', parte.denominazione)}</Anagrafica>{regime}</DatiAnagrafici>{sede}</{ruolo}>"
        )

    header = (
        "<FatturaElettronicaHeader><DatiTrasmissione><IdTrasmittente>"
        + _x("IdPaese", cedente.id_paese)
        + _x("IdCodice", cedente.id_codice)
        + "</IdTrasmittente>"
        + _x("ProgressivoInvio", progressivo)
        + _x("FormatoTrasmissione", versione)
        + _x("CodiceDestinatario", codice_destinatario)
        + "</DatiTrasmissione>"
        + anagrafica(cedente, "CedentePrestatore")
        + anagrafica(cessionario, "CessionarioCommittente")
        + "</FatturaElettronicaHeader>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<p:FatturaElettronica versione="{versione}" '
        f'xmlns:p="{FATTURE}">{header}{"".join(bodies)}</p:FatturaElettronica>\n'
    ).encode()


def _pagamento(scadenze: Sequence[tuple[str, str]]) -> str:
    if not scadenze:
        return ""
    return (
        "<DatiPagamento>"
        + _x("CondizioniPagamento", "TP01" if len(scadenze) > 1 else "TP02")
        + "".join(
            "<DettaglioPagamento>"
            + _x("ModalitaPagamento", "MP05")
            + _x("DataScadenzaPagamento", data)
            + _x("ImportoPagamento", importo)
            + "</DettaglioPagamento>"
            for data, importo in scadenze
        )
        + "</DatiPagamento>"
    )


def firma_p7m(content: bytes, firma: builder.Firma) -> bytes:
    """`content` enveloped in a CAdES-like SignedData (.p7m), as signing tools write it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(firma.certificato, firma.chiave, hashes.SHA256())
        .sign(Encoding.DER, [pkcs7.PKCS7Options.NoCapabilities])
    )


def notifica(
    codice: str,
    *,
    identificativo_sdi: str,
    nome_file: str,
    message_id: str,
    quando: datetime,
    dialetto: str = "pa",
    pec_message_id: str | None = None,
    errori: Sequence[tuple[str, str]] = (),
    esito: str = "EC01",
    riferimento_fattura: tuple[str, str] | None = None,
    descrizione: str | None = None,
    codice_destinatario: str = "0000000",
    formato: str = "FPR12",
) -> bytes:
    """One SdI notification document. `dialetto` is "pa" (fatturapa.gov.it) or "b2b" (ivaservizi)."""
    if codice not in RADICI:
        raise ValueError(f"unknown SdI notification code {codice!r}")
    radice = RADICI[codice][0 if dialetto == "pa" else 1]
    ns = PA if dialetto == "pa" else B2B
    stamp = quando.isoformat(timespec="milliseconds")
    corpo = [_x("IdentificativoSdI", identificativo_sdi)]
    riferimento = ""
    if riferimento_fattura:
        riferimento = (
            "<RiferimentoFattura>"
            + _x("NumeroFattura", riferimento_fattura[0])
            + _x("AnnoFattura", riferimento_fattura[1])
            + "</RiferimentoFattura>"
        )
    if codice not in ("EC", "SE"):
        corpo.append(_x("NomeFile", nome_file))
    if codice in ("RC", "NS", "MC", "AT"):
        corpo.append(_x("DataOraRicezione", stamp))
    if codice == "RC":
        corpo += [
            _x("DataOraConsegna", stamp),
            "<Destinatario><Codice>"
            + codice_destinatario
            + "</Codice><Descrizione>Destinatario</Descrizione></Destinatario>",
        ]
    elif codice == "NS":
        corpo.append(
            "<ListaErrori>"
            + "".join(
                f"<Errore>{_x('Codice', c)}{_x('Descrizione', d)}</Errore>"
                for c, d in (errori or [("00200", "File non conforme al formato")])
            )
            + "</ListaErrori>"
        )
    elif codice == "MC" and dialetto == "b2b":
        corpo += [_x("Hash", "0" * 64), _x("DataMessaADisposizione", stamp)]
    elif codice == "NE":
        corpo.append(
            "<EsitoCommittente>"
            + _x("IdentificativoSdI", identificativo_sdi)
            + riferimento
            + _x("Esito", esito)
            + "</EsitoCommittente>"
        )
    elif codice == "DT":
        corpo.insert(1, riferimento)
    elif codice == "AT":
        corpo += ["<Destinatario>" + _x("Codice", codice_destinatario) + "</Destinatario>"]
    elif codice == "MT":
        if dialetto == "pa":
            corpo.append(_x("CodiceDestinatario", codice_destinatario))
        corpo += [_x("Formato", formato), _x("TentativiInvio", "1")]
    elif codice == "EC":
        corpo += [riferimento, _x("Esito", esito)]
    elif codice == "SE":
        corpo += [riferimento, _x("Scarto", "EN01")]
    if descrizione and codice in ("MC", "DT", "EC"):
        corpo.append(_x("Descrizione", descrizione))
    if codice != "EC":
        corpo.append(_x("MessageId", message_id))
    if pec_message_id and codice not in ("MT", "EC"):
        corpo.append(_x("PecMessageId", pec_message_id))
    if codice == "AT":
        corpo.append(_x("HashFileOriginale", "0" * 64))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ns:{radice} xmlns:ns="{ns}" versione="1.0">'
        f"{''.join(corpo)}</ns:{radice}>\n"
    ).encode()


def nome_notifica(nome_fattura_inviata: str, codice: str, progressivo: int = 1) -> str:
    base = nome_fattura_inviata.split(".", 1)[0]
    return f"{base}_{codice}_{progressivo:03d}.xml"


def message_id_sdi(identificativo_sdi: str, data: datetime, seq: int) -> str:
    """The Message-ID the SdI's mail system gives the message it submits."""
    return f"<{seq}{identificativo_sdi}.{int(data.timestamp() * 1000)}@pec.fatturapa.it>"


def busta_sdi(
    files: Sequence[tuple[str, bytes]],
    *,
    identificativo_sdi: str,
    codice: str,
    destinatario: str,
    data: datetime,
    seq: int,
    casella_sdi: str = "sdi01@pec.fatturapa.it",
    gestore: builder.Gestore = SOGEI,
    simulazione: bool = False,
) -> bytes:
    """The busta di trasporto in which the SdI delivers `files` (breve receipts, as the SdI asks)."""
    oggetto = f"{TESTI_OGGETTO.get(codice, 'Invio File')} {identificativo_sdi}" + (
        " (SIMULAZIONE)" if simulazione else ""
    )
    originale = builder.messaggio_originale(
        mittente=casella_sdi,
        destinatari=[destinatario],
        oggetto=oggetto,
        testo=f"Il file {files[0][0]} e' stato trasmesso dal Sistema di Interscambio.\n",
        allegati=[(name, "application/octet-stream", content) for name, content in files],
        message_id=message_id_sdi(identificativo_sdi, data, seq),
        tipo_ricevuta="breve",
        data=data,
    )
    return builder.busta_trasporto(
        originale,
        gestore=gestore,
        identificativo=builder.nuovo_identificativo(gestore, data, seq),
        data=data,
        destinatari=[builder.Destinatario(destinatario)],
    )
