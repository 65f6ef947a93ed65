"""The message-kind vocabulary: the protocol's own header values (docs/architecture.md, "Message kinds")."""

from __future__ import annotations

POSTA_CERTIFICATA = "posta-certificata"
ANOMALIA = "anomalia"
ACCETTAZIONE = "accettazione"
NON_ACCETTAZIONE = "non-accettazione"
PRESA_IN_CARICO = "presa-in-carico"
AVVENUTA_CONSEGNA = "avvenuta-consegna"
ERRORE_CONSEGNA = "errore-consegna"
PREAVVISO_ERRORE_CONSEGNA = "preavviso-errore-consegna"
RILEVAZIONE_VIRUS = "rilevazione-virus"
POSTA_ORDINARIA = "posta-ordinaria"
MALFORMED = "malformed"

# X-Ricevuta values, in the order a sender meets them
RICEVUTE = (
    ACCETTAZIONE,
    NON_ACCETTAZIONE,
    PRESA_IN_CARICO,
    AVVENUTA_CONSEGNA,
    ERRORE_CONSEGNA,
    PREAVVISO_ERRORE_CONSEGNA,
    RILEVAZIONE_VIRUS,
)
# X-Trasporto value -> kind
BUSTE = {"posta-certificata": POSTA_CERTIFICATA, "errore": ANOMALIA}
ALL = (POSTA_CERTIFICATA, ANOMALIA, *RICEVUTE, POSTA_ORDINARIA, MALFORMED)
PEC_KINDS = frozenset((POSTA_CERTIFICATA, ANOMALIA, *RICEVUTE))

# Subject prefixes providers put before the original subject (RFC 6109 and observed samples).
# Longest first, so "AVVISO DI MANCATA CONSEGNA PER VIRUS: " wins over its shorter prefix.
SUBJECT_PREFIXES = tuple(
    sorted(
        {
            "POSTA CERTIFICATA: ": POSTA_CERTIFICATA,
            "ANOMALIA MESSAGGIO: ": ANOMALIA,
            "ACCETTAZIONE: ": ACCETTAZIONE,
            "AVVISO DI NON ACCETTAZIONE: ": NON_ACCETTAZIONE,
            "AVVISO DI NON ACCETTAZIONE PER VIRUS: ": NON_ACCETTAZIONE,
            "PRESA IN CARICO: ": PRESA_IN_CARICO,
            "CONSEGNA: ": AVVENUTA_CONSEGNA,
            "AVVISO DI MANCATA CONSEGNA: ": ERRORE_CONSEGNA,
            "AVVISO DI MANCATA CONSEGNA PER VIRUS: ": ERRORE_CONSEGNA,
            # RFC 6109 §3.1.6: both the 12 h and the 24 h notices carry X-Ricevuta: preavviso-errore-consegna
            "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ": PREAVVISO_ERRORE_CONSEGNA,
            "PROBLEMA DI SICUREZZA: ": RILEVAZIONE_VIRUS,
        }.items(),
        key=lambda item: -len(item[0]),
    )
)
