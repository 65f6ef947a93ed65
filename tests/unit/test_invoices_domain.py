"""The SdI lifecycle as a pure state machine: each notification kind from each state, the
deadlines that follow, impossible moves kept as notes, duplicates ignored; filters and the CSV
export (formula injection)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from pecflow.domain import invoices as inv

AT = datetime(2026, 3, 2, 10, tzinfo=UTC)


def notice(kind: str, esito: str | None = None, key: str = "k1") -> inv.Notice:
    return inv.Notice(type=kind, at=AT, key=key, esito=esito, identificativo_sdi="111", nome_file="IT1_1.xml")


# every active move the SdI can make, from "inviata" and onwards
@pytest.mark.parametrize(
    ("state", "kind", "esito", "to_pa", "after", "deadline_by"),
    [
        (inv.INVIATA, "RC", None, True, inv.CONSEGNATA, "2026-03-17"),  # 15 days for the PA's esito
        (inv.INVIATA, "RC", None, False, inv.CONSEGNATA, None),
        (inv.INVIATA, "NS", None, False, inv.SCARTATA, "2026-03-07"),  # corrected within 5 days
        (inv.INVIATA, "MC", None, True, inv.NON_RECAPITATA, "2026-03-12"),  # SdI retries 10 days, then AT
        (inv.INVIATA, "MC", None, False, inv.NON_RECAPITATA, None),  # in the recipient's area
        (inv.NON_RECAPITATA, "AT", None, True, inv.ATTESTAZIONE, None),
        (inv.NON_RECAPITATA, "RC", None, True, inv.CONSEGNATA, "2026-03-17"),
        (inv.CONSEGNATA, "NE", "EC01", True, inv.ACCETTATA, None),
        (inv.CONSEGNATA, "NE", "EC02", True, inv.RIFIUTATA, None),
        (inv.CONSEGNATA, "DT", None, True, inv.DECORRENZA_TERMINI, None),
        (inv.INVIATA, "NE", "EC01", True, inv.ACCETTATA, None),  # the esito overtook its RC
    ],
)
def test_active_moves(state, kind, esito, to_pa, after, deadline_by):
    step = inv.advance(inv.ACTIVE, state, notice(kind, esito), to_pa=to_pa)
    assert step.moved and step.state == after and not step.seen
    if deadline_by is not None:
        assert step.deadline is not None and step.deadline.by == deadline_by
    elif kind in ("NE", "DT"):
        assert step.clear_deadline and step.deadline is None


def test_after_mc_to_a_business_the_office_is_told_where_the_invoice_is():
    step = inv.advance(inv.ACTIVE, inv.INVIATA, notice("MC"), to_pa=False)
    assert step.deadline is not None and "area riservata" in step.deadline.what and step.deadline.by is None


@pytest.mark.parametrize(
    ("state", "kind", "esito", "after"),
    [
        (inv.RICEVUTA, "DT", None, inv.DECORRENZA_TERMINI),
        (inv.RICEVUTA, "EC", "EC01", inv.ACCETTATA),
        (inv.RICEVUTA, "EC", "EC02", inv.RIFIUTATA),
        (inv.ACCETTATA, "SE", None, inv.ESITO_SCARTATO),
        (inv.RIFIUTATA, "SE", None, inv.ESITO_SCARTATO),
    ],
)
def test_passive_moves(state, kind, esito, after):
    step = inv.advance(inv.PASSIVE, state, notice(kind, esito), to_pa=True)
    assert step.moved and step.state == after


def test_metadata_of_a_passive_invoice_is_kept_without_moving_it():
    step = inv.advance(inv.PASSIVE, inv.RICEVUTA, notice("MT"), to_pa=False)
    assert not step.moved and step.state == inv.RICEVUTA and "metadati" in step.note


@pytest.mark.parametrize(
    ("direction", "state", "kind", "esito"),
    [
        (inv.ACTIVE, inv.SCARTATA, "RC", None),  # a refused invoice is never delivered
        (inv.ACTIVE, inv.ACCETTATA, "NE", "EC02"),  # an esito is final
        (inv.ACTIVE, inv.DECORRENZA_TERMINI, "NE", "EC01"),
        (inv.ACTIVE, inv.CONSEGNATA, "NS", None),
        (inv.ACTIVE, inv.INVIATA, "SE", None),  # not the sender's notification
        (inv.ACTIVE, inv.INVIATA, "MT", None),
        (inv.PASSIVE, inv.RICEVUTA, "RC", None),
        (inv.PASSIVE, inv.DECORRENZA_TERMINI, "EC", "EC01"),
    ],
)
def test_impossible_moves_are_notes_and_never_raise(direction, state, kind, esito):
    step = inv.advance(direction, state, notice(kind, esito), to_pa=True)
    assert not step.moved and step.state == state
    assert "stato invariato" in step.note or "già" in step.note


def test_an_esito_that_is_neither_ec01_nor_ec02_moves_nothing():
    step = inv.advance(inv.ACTIVE, inv.CONSEGNATA, notice("NE", "EC07"), to_pa=True)
    assert not step.moved and "EC07" in step.note


def test_the_same_notification_twice_changes_nothing_the_second_time():
    first = inv.advance(inv.ACTIVE, inv.INVIATA, notice("RC", key="sha:file"), to_pa=False)
    again = inv.advance(inv.ACTIVE, first.state, notice("RC", key="sha:file"), to_pa=False, seen=["sha:file"])
    assert first.moved and again.seen and not again.moved and again.state == inv.CONSEGNATA


def test_every_state_reached_by_some_notification():
    reached = {target for target in inv._MOVES.values()}
    assert reached | {inv.INVIATA, inv.RICEVUTA} == set(inv.STATES)


def test_a_passive_invoice_to_a_pa_owes_its_esito_within_15_days():
    deadline = inv.initial_deadline(inv.PASSIVE, AT, to_pa=True)
    assert deadline is not None and deadline.by == "2026-03-17" and "EC" in deadline.what
    assert inv.initial_deadline(inv.PASSIVE, AT, to_pa=False) is None
    assert inv.to_pa("FPA12") and not inv.to_pa("FPR12") and not inv.to_pa(None)


def test_storage_prefix_is_safe_and_ordered_by_year_and_supplier():
    assert inv.storage_prefix(inv.PASSIVE, "2026", "IT01234567890", "IT01234567890_00001.xml.p7m") == (
        "fatture/passive/2026/IT01234567890/IT01234567890_00001.xml.p7m"
    )
    assert inv.storage_prefix(inv.PASSIVE, "x", None, "../../a b.xml") == (
        "fatture/passive/senza-anno/senza-partita-iva/.._.._a_b.xml"
    )


ITEMS = [
    {"direction": "passive", "state": "ricevuta", "data": "2026-01-10", "supplier_vat": "IT01234567890",
     "supplier_name": "Fornitore Uno S.r.l.", "nome_file": "IT01234567890_00001.xml", "totale": "122.00"},
    {"direction": "passive", "state": "decorrenza termini", "data": "2026-02-10", "supplier_vat": "IT09876543210",
     "supplier_name": "=HYPERLINK(\"http://x\")", "nome_file": "IT09876543210_00002.xml", "totale": "-5.00",
     "scadenze": [{"data": "2026-03-10", "importo": "50.00"}, {"data": "2026-04-10", "importo": "50.00"}],
     "deadline": {"what": "esito", "by": "2026-02-25"}},
    {"direction": "active", "state": "inviata", "data": "2026-02-11", "nome_file": "IT1_3.xml"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        (inv.InvoiceFilter(), ["IT01234567890_00001.xml", "IT09876543210_00002.xml", "IT1_3.xml"]),
        (inv.InvoiceFilter(direction="passive"), ["IT01234567890_00001.xml", "IT09876543210_00002.xml"]),
        (inv.InvoiceFilter(since="2026-02-01"), ["IT09876543210_00002.xml", "IT1_3.xml"]),
        (inv.InvoiceFilter(until="2026-02-10"), ["IT01234567890_00001.xml", "IT09876543210_00002.xml"]),
        (inv.InvoiceFilter(state="ricevuta"), ["IT01234567890_00001.xml"]),
        (inv.InvoiceFilter(supplier="uno"), ["IT01234567890_00001.xml"]),
        (inv.InvoiceFilter(supplier="IT0987"), ["IT09876543210_00002.xml"]),
    ],
)
def test_filters(filters, names):
    assert [i["nome_file"] for i in ITEMS if filters.keeps(i)] == names


@pytest.mark.parametrize("bad", [{"since": "10/01/2026"}, {"state": "pagata"}, {"direction": "sideways"}])
def test_filters_refuse_what_they_cannot_mean(bad):
    with pytest.raises(ValueError):
        inv.InvoiceFilter(**bad)


def test_csv_export_defuses_formulas_and_lists_due_dates():
    rows = list(csv.reader(io.StringIO(inv.to_csv(ITEMS)), delimiter=";"))
    header, first, second = rows[0], rows[1], rows[2]
    assert header[:4] == ["direzione", "stato", "nome_file", "identificativo_sdi"]
    assert first[header.index("direzione")] == "ricevuta"
    assert second[header.index("fornitore")] == '\'=HYPERLINK("http://x")'
    assert second[header.index("totale")] == "'-5.00"
    assert second[header.index("scadenze")] == "2026-03-10 50.00; 2026-04-10 50.00"
    assert second[header.index("termine")] == "2026-02-25 esito"


def test_a_late_rc_after_the_esito_is_noted_not_an_error():
    step = inv.advance(inv.ACTIVE, inv.ACCETTATA, notice("RC"), to_pa=True)
    assert not step.moved and step.state == inv.ACCETTATA and "dopo l'esito" in step.note
