"""A campaign made in the console's wizard, in Chromium against the local stack: a manager picks a
20-row CSV (its columns become merge fields, inserted by a click), an attachment for everyone, the
receipt type; the upload is checked and the report shows the one bad row (row, column, reason);
the corrected CSV is uploaded again and validated, the first messages previewed, one row sent as a
test to the manager's own address, the provider's terms read (the mailbox's first campaign) and
the campaign confirmed. The panel follows it while it runs (sent, then the receipts) to the
numbers the PEC simulator was scripted for, with its chart and expected end; one failed recipient
is drilled into, down to its receipt. Every step photographed at laptop and phone size and checked
by axe-core (conftest)."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
from playwright.sync_api import expect

from local.pec_provider import FAIL, REJECT
from local.pecbuild import builder
from pecflow import bootstrap
from tests.browser.test_console_inbox import SECRET_PASSWORD, new_page, sign_in
from tests.e2e.test_campaigns import received_by, settle

ROWS = 20
FAILED = {3, 11}  # errore-consegna from the recipient's provider
REJECTED = {7}  # non-accettazione at the sender's provider
BAD_ROW = 5  # its address has no @: the report names CSV row BAD_ROW + 2
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}


def customers_csv(broken: bool) -> bytes:
    """As Excel on Italian Windows writes it: cp1252, semicolons."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(["PEC", "Ragione Sociale", "Importo"])
    for i in range(ROWS):
        address = f"cliente{i:02d}@pec.beta.test"
        if broken and i == BAD_ROW:
            address = "cliente05.pec.beta.test"
        writer.writerow([address, f"Cliente {i} S.r.l. – è", f"{100 + i},50"])
    return text.getvalue().encode("cp1252")


def drive_until(stack, locator, seconds: float = 90) -> None:
    """Run the stack's functions (the upload's event, the fan-out) until the page shows `locator`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.runner.run_until_idle(30)
        try:
            expect(locator).to_be_visible(timeout=1500)
            return
        except AssertionError:
            continue
    expect(locator).to_be_visible(timeout=1)


def at_both_sizes(page, screens, name: str) -> None:
    screens.check(page, name)
    page.set_viewport_size(PHONE)
    screens.check(page, f"{name}-phone")
    page.set_viewport_size(LAPTOP)


@pytest.mark.timeout(420)
def test_a_campaign_made_in_the_wizard_fixed_after_its_report_and_followed_to_its_numbers(
    stack, browser, screens
):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    tests_box = alfa.add_mailbox("prove@pec.alfa.test").address
    for i in range(ROWS):
        address = f"cliente{i:02d}@pec.beta.test"
        if i in FAILED:
            net.script(address, FAIL)
        elif i in REJECTED:
            net.script(address, REJECT)
        else:
            beta.add_mailbox(address)
    pool = stack.sign_in(mfa="required")
    stack.add_person("marco", "marco@alfa.test", "Marco Neri", {office.address: "manager"},
                     password=SECRET_PASSWORD["marco"])  # fmt: skip
    console = stack.serve_console()

    page = new_page(browser, **LAPTOP, accept_downloads=True)
    sign_in(page, console.url, pool, "marco")
    page.get_by_role("link", name=f"Apri {office.address}").click()
    page.get_by_role("link", name="Campagne").click()
    page.get_by_role("link", name="Nuova campagna").click()

    # step 1: the list and the message; the CSV's columns are merge fields, inserted by a click
    expect(page.get_by_role("heading", name="Elenco e messaggio")).to_be_focused()
    page.get_by_label("Nome della campagna").fill("Solleciti di marzo")
    page.get_by_label("Finalità").fill("sollecito di pagamento ai clienti")
    page.get_by_label("Elenco dei destinatari (CSV)").set_input_files(
        {"name": "clienti.csv", "mimeType": "text/csv", "buffer": customers_csv(broken=True)}
    )
    expect(page.get_by_test_id("csv-summary")).to_contain_text("3 colonne, circa 20 righe")
    expect(page.get_by_label("Colonna con l’indirizzo PEC")).to_have_value("pec")
    next_button = page.get_by_role("button", name="Avanti")
    next_button.click()  # nothing written yet: the step says what is missing
    expect(page.get_by_text("Campo obbligatorio.")).to_have_count(2)
    subject = page.get_by_label("Oggetto")
    subject.fill("Sollecito – ")
    page.get_by_role("button", name="Inserisci il campo ragione_sociale").click()
    expect(subject).to_have_value("Sollecito – {{ ragione_sociale }}")
    body = page.get_by_label("Testo del messaggio")
    body.fill("Gentile ")
    page.get_by_role("button", name="Inserisci il campo ragione_sociale").click()
    body.press("End")
    body.press_sequentially(",\nle ricordiamo l'importo di {{ importo|importo }}.\n")
    expect(body).to_have_value(re.compile(r"^Gentile \{\{ ragione_sociale \}\},\nle ricordiamo"))
    at_both_sizes(page, screens, "wizard-message")
    next_button.click()

    # step 2: an attachment for everyone, the receipt type
    expect(page.get_by_role("heading", name="Allegati e opzioni")).to_be_focused()
    page.get_by_label("Allegati uguali per tutti").set_input_files(
        {"name": "condizioni.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 condizioni\n%%EOF\n"}
    )
    page.get_by_label("Tipo di ricevuta di consegna").select_option("breve")
    expect(page.get_by_label("Un messaggio per ogni valore di")).to_have_value("")
    at_both_sizes(page, screens, "wizard-options")
    page.get_by_role("button", name="Avanti").click()

    # step 3: the provider's terms before the first campaign; upload and check
    expect(page.get_by_role("heading", name="Verifica e invio")).to_be_focused()
    at_both_sizes(page, screens, "wizard-check")
    page.get_by_role("button", name="Carica e verifica").click()
    report = page.get_by_role("heading", name="Esito della verifica")
    drive_until(stack, report)
    expect(page.get_by_role("alert")).to_contain_text("L’elenco ha 1 errori su 20 righe")
    bad = page.locator("table.bad-rows tbody tr")
    expect(bad).to_have_count(1)
    expect(bad.locator("td").nth(0)).to_have_text(str(BAD_ROW + 2))
    expect(bad.locator("td").nth(1)).to_have_text("PEC")  # as the CSV names it
    expect(bad.locator("td").nth(2)).not_to_be_empty()
    at_both_sizes(page, screens, "wizard-report")

    # the corrected list, uploaded again and checked from the start
    page.get_by_label("Elenco corretto (CSV)").set_input_files(
        {"name": "clienti-corretto.csv", "mimeType": "text/csv", "buffer": customers_csv(broken=False)}
    )
    page.get_by_role("button", name="Carica l’elenco corretto e verifica").click()
    valid = page.get_by_text("Elenco verificato: 20 righe valide, 20 messaggi da inviare")
    drive_until(stack, valid)
    previews = page.locator("ol.preview > li")
    expect(previews).to_have_count(3)
    expect(previews.first).to_contain_text("cliente00@pec.beta.test")
    expect(previews.first).to_contain_text("Sollecito – Cliente 0 S.r.l. – è")
    expect(previews.first).to_contain_text("l'importo di 100,50 €")
    expect(previews.first).to_contain_text("condizioni.pdf")

    # a test send of row 4 to the manager's own address
    page.get_by_label("Riga del CSV").fill("4")
    page.get_by_label("Il tuo indirizzo PEC").fill(tests_box)
    page.get_by_role("button", name="Invia la prova").click()
    expect(page.get_by_text(f"Prova inviata a {tests_box}")).to_be_visible()

    terms = page.get_by_test_id("provider-terms")
    expect(terms).to_contain_text("Prima campagna da questa casella")
    expect(terms).to_contain_text("250 messaggi ogni 20 minuti")
    confirm = page.get_by_role("button", name="Conferma e invia 20 messaggi")
    expect(confirm).to_be_disabled()  # the terms first
    at_both_sizes(page, screens, "wizard-preview")
    page.get_by_label("Ho letto le condizioni del gestore per gli invii automatici").check()
    confirm.click()

    # the panel: queued from the confirmation, with the expected end from the quota
    expect(page.get_by_role("heading", name="Campagna Solleciti di marzo")).to_be_visible()
    campaign_id = page.url.rsplit("/", 1)[1]
    stats = page.get_by_test_id("stats")
    expect(stats.locator(".stat-total dd")).to_have_text("20")
    expect(stats.locator(".stat-to_send dd")).to_have_text("20")
    expect(page.get_by_test_id("expected-end")).to_contain_text("Fine prevista dell’invio")
    expect(page.get_by_role("button", name="Annulla la campagna")).to_be_visible()
    expect(page.get_by_role("button", name="Metti in pausa")).to_be_visible()  # queuing goes on, parked
    screens.check(page, "campaign-queued")

    # sent, before any receipt: the panel follows
    stack.runner.run_until_idle(120)
    expect(stats.locator(".stat-sent dd")).to_have_text("20", timeout=15_000)
    expect(page.get_by_test_id("campaign-status")).to_have_text("in invio")
    expect(page.get_by_role("button", name="Metti in pausa")).to_be_visible()
    screens.check(page, "campaign-sending")

    # the receipts: the numbers the simulator was scripted for
    counters = settle(stack, campaign_id)
    delivered = ROWS - len(FAILED) - len(REJECTED)
    assert (counters["delivered"], counters["delivery_failures"], counters["errors"]) == (delivered, 2, 1)
    expect(page.get_by_test_id("campaign-status")).to_have_text("completata", timeout=15_000)
    expect(stats.locator(".stat-delivered dd")).to_have_text(str(delivered))
    expect(stats.locator(".stat-delivery_failures dd")).to_have_text("2")
    expect(stats.locator(".stat-errors dd")).to_have_text("1")
    expect(stats.locator(".stat-waiting dd")).to_have_text("0")
    expect(page.locator("table.recipients tbody tr")).to_have_count(ROWS)  # the list follows the counters
    expect(page.locator("figure.chart path.chart-line")).to_have_count(3)
    expect(page.get_by_role("button", name="Rispedisci i non consegnati")).to_be_visible()
    page.get_by_role("button", name="Prepara l’esito (CSV)").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Scarica l’esito (CSV)").click()
    exported = download.value.path().read_bytes().decode("utf-8-sig")
    assert exported.count("\n") >= ROWS and "cliente03@pec.beta.test" in exported
    at_both_sizes(page, screens, "campaign-done")
    series = bootstrap.campaign_admin(stack.deployment()).campaigns.get(campaign_id).extra["series"]
    assert len(series) >= 3 and series[-1][3] == delivered  # [at, sent, accepted, delivered, …]

    # the test send reached the chosen address only, and is not counted
    assert received_by(net, tests_box) == 1
    assert received_by(net, "cliente02@pec.beta.test") == 1  # row 4's recipient: the campaign's message alone
    assert counters["total"] == ROWS

    # drill-down: the failed recipients, one's receipt opened
    page.get_by_label("Mostra").select_option(label="Errori di consegna")
    failed = page.locator("table.recipients tbody tr")
    expect(failed).to_have_count(2)
    expect(failed.first).to_contain_text("cliente03@pec.beta.test")
    screens.check(page, "campaign-failures")
    failed.first.get_by_role("link", name="errore di consegna").click()
    expect(page.get_by_text("cliente03@pec.beta.test").first).to_be_visible()
    at_both_sizes(page, screens, "campaign-receipt")

    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == [], failures[0].error if failures else None
