"""Alerts: what went wrong, grouped, in words office staff understand (pure: no AWS).

An occurrence is one thing that happened (a delivery failed, a mailbox could not be read); it
belongs to a group, one per cause and subject (the campaign, else the mailbox) and period (an
hour unless configured). The first occurrences that reach the cause's threshold in a period
publish one alert, with their count and a few examples; the later ones of that period are only
counted, and one summary tells their number when the period is over. A storm of a thousand
failures is one alert (and at most one summary) per period, never a thousand.

Causes other parts raise through `pecflow.services.alerts.Alerts.raise_` are listed in CAUSES;
the SdI invoice lifecycle raises `sdi-scartata` (NS, EC02) with the invoice in `example`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pecflow.domain.quota import _offset_function
from pecflow.pec import kinds

MAX_EXAMPLES = 5
EXAMPLE_CHARS = 300


@dataclass(frozen=True, slots=True)
class Cause:
    name: str
    title: str  # the alert's subject line
    what: str  # what happened: {count}, {mailbox}, {where} (" nella campagna X" or ""), {hours}
    todo: str  # what to do: {mailbox}
    threshold: int = 1  # occurrences in a period before it is worth an alert
    summary: bool = True  # False: the later occurrences of a period add nothing worth telling


CONSEGNA_FALLITA = "consegna-fallita"
NON_ACCETTAZIONE = "non-accettazione"
PREAVVISO = "preavviso-errore-consegna"
SDI_SCARTATA = "sdi-scartata"
RICEVUTE_NON_ABBINATE = "ricevute-non-abbinate"
NON_PRESI_IN_CARICO = "non-presi-in-carico"
CASELLA_QUASI_PIENA = "casella-quasi-piena"
LETTURA_FALLITA = "lettura-casella-fallita"
FIRMA_NON_VALIDA = "firma-non-valida"
QUARANTENA = "messaggio-in-quarantena"
REGOLA = "avviso-da-regola"

CAUSES: dict[str, Cause] = {
    c.name: c
    for c in (
        Cause(
            CONSEGNA_FALLITA,
            "Consegne PEC non riuscite",
            "Il gestore dei destinatari non ha consegnato {count} messaggi inviati da {mailbox}{where} "
            "(ricevuta di errore di consegna).",
            "Controllate l'indirizzo di ogni destinatario (errato, casella piena o non più attiva) e, "
            "se serve, inviate di nuovo il messaggio; le ricevute sono nella posta in arrivo di {mailbox}.",
        ),
        Cause(
            NON_ACCETTAZIONE,
            "Messaggi PEC non accettati dal gestore",
            "Il gestore di {mailbox} non ha accettato {count} messaggi{where}: non sono partiti "
            "(ricevuta di non accettazione).",
            "Leggete il motivo nella ricevuta (spesso un allegato troppo grande o un indirizzo non "
            "valido), correggete e inviate di nuovo.",
        ),
        Cause(
            PREAVVISO,
            "Consegne PEC in ritardo (preavviso di 12 ore)",
            "Per {count} messaggi inviati da {mailbox}{where} il gestore dei destinatari non è "
            "riuscito a consegnare entro 12 ore: riproverà fino a 24 ore.",
            "Per ora non serve fare nulla. Se entro 24 ore arriva l'errore di consegna, contattate "
            "il destinatario per un'altra via.",
        ),
        Cause(
            SDI_SCARTATA,
            "Fatture elettroniche scartate o rifiutate",
            "{count} fatture inviate da {mailbox} sono state scartate dallo SdI (notifica di scarto) "
            "o rifiutate dal cliente.",
            "Aprite la notifica dello SdI per il motivo, correggete la fattura e inviatela di nuovo "
            "(dopo uno scarto, entro 5 giorni con lo stesso numero).",
        ),
        Cause(
            RICEVUTE_NON_ABBINATE,
            "Ricevute PEC senza messaggio corrispondente",
            "{count} ricevute arrivate su {mailbox} da più di {hours} ore non corrispondono a nessun "
            "messaggio inviato con pecflow.",
            "Di solito riguardano messaggi inviati dalla webmail o da un altro programma: "
            "controllatele con `pecflow inbox list {mailbox} --unmatched`.",
        ),
        Cause(
            NON_PRESI_IN_CARICO,
            "Messaggi PEC non presi in carico",
            "{count} messaggi arrivati su {mailbox} sono «da gestire» da più di {hours} ore: "
            "nessuno li ha presi in carico.",
            "Aprite la posta in arrivo di {mailbox}, filtro «da gestire», e assegnate ogni messaggio "
            "a chi deve occuparsene.",
        ),
        Cause(
            CASELLA_QUASI_PIENA,
            "Casella PEC quasi piena",
            "La casella {mailbox} presso il gestore è quasi piena.",
            "Quando è piena, i messaggi in arrivo vengono respinti. I messaggi sono già archiviati da "
            "pecflow: liberate spazio dalla webmail del gestore o attivate lo svuotamento automatico "
            "della casella.",
            summary=False,  # each poll of a full mailbox sees it again: the alert said it
        ),
        Cause(
            LETTURA_FALLITA,
            "Casella PEC non letta",
            "pecflow non riesce a leggere la casella {mailbox}: {count} tentativi falliti.",
            "Se la password della casella è stata cambiata, aggiornatela in pecflow; altrimenti "
            "verificate sul sito del gestore che il servizio funzioni. `pecflow mailbox list` mostra "
            "l'ultimo errore.",
            threshold=3,
        ),
        Cause(
            FIRMA_NON_VALIDA,
            "Firma del gestore non valida",
            "{count} messaggi ricevuti su {mailbox} hanno la firma del gestore non valida: sono stati "
            "modificati dopo la firma, oppure la firma è danneggiata.",
            "Non considerate certificato il contenuto di questi messaggi: l'originale resta archiviato "
            "così come è arrivato. Chiedete al mittente di inviarli di nuovo e segnalate il caso al "
            "gestore.",
        ),
        Cause(
            QUARANTENA,
            "Messaggi PEC in quarantena",
            "{count} messaggi ricevuti su {mailbox} non sono stati elaborati e sono in quarantena: "
            "sono archiviati e registrati con il motivo, e la casella continua a essere letta.",
            "Un amministratore li trova con `pecflow inbox list {mailbox} --quarantined` e li apre "
            "dall'archivio; se il motivo è un errore di pecflow, segnalatelo.",
        ),
        Cause(
            REGOLA,
            "Avviso da una regola automatica",
            "Una regola della casella {mailbox} chiede di avvisarvi: {count} messaggi.",
            "Apriteli nella posta in arrivo di {mailbox}.",
        ),
    )
}

# receipts that say a message we sent did not arrive (or not yet)
RECEIPT_CAUSES = {
    kinds.ERRORE_CONSEGNA: CONSEGNA_FALLITA,
    kinds.RILEVAZIONE_VIRUS: CONSEGNA_FALLITA,
    kinds.NON_ACCETTAZIONE: NON_ACCETTAZIONE,
    kinds.PREAVVISO_ERRORE_CONSEGNA: PREAVVISO,
}


class UnknownCause(ValueError):
    pass


@dataclass(slots=True)
class Occurrence:
    """One or more occurrences of a cause about one mailbox (and campaign), as a poll or a
    check sees them; `examples`: which messages, one short line each."""

    cause: str
    mailbox: str
    campaign_id: str | None = None
    count: int = 1
    examples: list[str] = field(default_factory=list)
    detail: str | None = None  # e.g. the error, the usage: the latest wins
    people: tuple[str, ...] = ()  # who is named (the rules' notify)
    rule: str | None = None
    hours: float | None = None  # the time-based causes: after how long

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise UnknownCause(f"no alert cause {self.cause!r} (known: {', '.join(sorted(CAUSES))})")
        self.mailbox = self.mailbox.lower()

    @property
    def subject(self) -> str:
        """What the group is about: the campaign, else the mailbox (and a rule's name)."""
        base = f"campagna:{self.campaign_id}" if self.campaign_id else f"casella:{self.mailbox}"
        return f"{base}:regola:{self.rule}" if self.rule else base

    def merge(self, other: Occurrence) -> None:
        self.count += other.count
        room = MAX_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])
        self.detail = other.detail or self.detail
        self.people = tuple(dict.fromkeys((*self.people, *other.people)))


def period_start(when: datetime, seconds: int) -> datetime:
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def group_key(occurrence: Occurrence, start: datetime) -> str:
    """The grouping item's key: cause, subject, period."""
    return f"{occurrence.cause}#{occurrence.subject}#{start.strftime('%Y-%m-%dT%H:%MZ')}"


def example(*parts: tuple[str, object]) -> str:
    """One short line naming a message: 'oggetto «...»; destinatario ...' (empty parts left out)."""
    text = "; ".join(f"{label} {value}" for label, value in parts if value not in (None, "", []))
    return text[:EXAMPLE_CHARS]


def _rome(when: datetime) -> str:
    """Italian time, as offices read it (the tz database's, or the EU rule without one)."""
    offset = _offset_function("Europe/Rome")(when.timestamp())
    return (when.astimezone(UTC) + timedelta(seconds=offset)).strftime("%d/%m/%Y %H:%M")


def alert_text(occurrence: Occurrence, start: datetime, period: int) -> tuple[str, str]:
    """(subject, text) of the alert that opens a period's group."""
    cause = CAUSES[occurrence.cause]
    where = f" nella campagna {occurrence.campaign_id}" if occurrence.campaign_id else ""
    values = {
        "count": _number(occurrence.count),
        "mailbox": occurrence.mailbox,
        "where": where,
        "hours": f"{occurrence.hours:g}" if occurrence.hours else "",
    }
    lines = [cause.what.format(**values)]
    if occurrence.rule:
        lines.append(f"Regola: «{occurrence.rule}».")
    if occurrence.people:
        lines.append(f"Per: {', '.join(occurrence.people)}.")
    if occurrence.detail:
        lines.append(f"Dettaglio: {occurrence.detail[:EXAMPLE_CHARS]}")
    if occurrence.examples:
        lines.append("")
        lines.append("Messaggi:" if occurrence.count <= len(occurrence.examples) else "Alcuni dei messaggi:")
        lines.extend(f"- {e}" for e in occurrence.examples[:MAX_EXAMPLES])
    lines += ["", "Cosa fare: " + cause.todo.format(**values), "", _grouping_note(cause, start, period)]
    subject = f"pecflow: {cause.title} - {occurrence.mailbox}"
    return subject[:100], "\n".join(lines)


def summary_text(cause_name: str, subject_of: str, mailbox: str, total: int, published: int,
                 start: datetime, period: int) -> tuple[str, str]:  # fmt: skip
    """(subject, text) of a period's summary: the occurrences after its alert."""
    cause = CAUSES[cause_name]
    end = start + timedelta(seconds=period)
    later = total - published
    about = _subject_words(subject_of)
    lines = [
        f"Riepilogo dal {_rome(start)} al {_rome(end)}: dopo l'avviso «{cause.title}» per {mailbox}"
        f"{f' ({about})' if about else ''} si sono verificati altri {_number(later)} casi, "
        f"{_number(total)} in tutto.",
        "",
        "Cosa fare: " + cause.todo.format(mailbox=mailbox, count=total, where="", hours=""),
    ]
    return f"pecflow: riepilogo - {cause.title} - {mailbox}"[:100], "\n".join(lines)


def _subject_words(subject_of: str) -> str:
    """'campagna:c1' -> 'campagna c1'; the mailbox itself is already named."""
    parts = subject_of.split(":")
    pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
    return ", ".join(f"{word} {value}" for word, value in pairs if word != "casella")


def _number(value: int) -> str:
    """1.234, as Italians write it."""
    return f"{value:,}".replace(",", ".")


def _grouping_note(cause: Cause, start: datetime, period: int) -> str:
    end = _rome(start + timedelta(seconds=period))
    if not cause.summary:
        return f"Fino alle {end} non arriveranno altri avvisi uguali."
    return f"Altri casi uguali fino alle {end} non manderanno altri avvisi: saranno contati in un solo riepilogo."


def receipt_cause(kind: str) -> str | None:
    return RECEIPT_CAUSES.get(kind)
