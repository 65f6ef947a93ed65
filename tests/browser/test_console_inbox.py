"""The shared inbox in the web console, in Chromium against the local stack: people sign in
(TOTP enrolment, then a code), a certified message arrives, two operators see it, one takes it in
charge while the other is told who holds it and since when; she replies and sees the reply's
receipts appear beside the message; a viewer sees no reply button and the API refuses the viewer's
reply too. Each screen photographed and checked by axe-core (conftest)."""

from __future__ import annotations

import re
import smtplib

import pytest
from playwright.sync_api import expect

from local.pec_provider import FAIL
from local.pecbuild import builder
from local.sign_in import totp
from tests.e2e.test_campaigns import settle, upload

POLL = 5 * 60
SECRET_PASSWORD = {
    "anna": "Anna-pw-2026",
    "bruno": "Bruno-pw-2026",
    "vera": "Vera-pw-2026",
    "marco": "Marco-pw-2026",
}


def submit(provider, account, to, *, subject, msgid, text, **more):
    """A message as the correspondent's mail client sends it, over SMTPS to their provider."""
    raw = builder.messaggio_originale(
        mittente=account.address, destinatari=[to], oggetto=subject, testo=text, message_id=msgid, **more
    )
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=20) as smtp:
        smtp.login(account.address, account.password)
        smtp.sendmail(account.address, [to], raw)


def new_page(browser, width=1280, height=900, **options):
    """A person's own browser: Italian, in Rome."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="it-IT", timezone_id="Europe/Rome", **options
    )
    return context.new_page()


def sign_in(page, url, pool, username, screens=None):
    """Password, then the TOTP step: enrolment the first time (the key read off the screen, as a
    person types it into their app), a code afterwards."""
    page.goto(url)
    expect(page.get_by_role("heading", name="Accedi")).to_be_visible()
    if screens:
        screens.check(page, "sign-in")
    page.get_by_label("Nome utente").fill(username)
    page.get_by_label("Password", exact=True).fill(SECRET_PASSWORD[username])
    page.get_by_role("button", name="Accedi", exact=True).click()
    code = page.get_by_label("Codice di verifica (6 cifre)")
    expect(code).to_be_visible()
    secret_shown = page.get_by_test_id("totp-secret")
    if secret_shown.count():
        if screens:
            screens.check(page, "mfa-setup")
        secret = secret_shown.inner_text().strip()
        assert secret == pool.totp_secret(username) or pool.totp_secret(username) is None
        code.fill(totp(secret))
        page.get_by_role("button", name="Attiva e accedi").click()
    else:
        if screens:
            screens.check(page, "mfa-code")
        code.fill(totp(pool.totp_secret(username)))
        page.get_by_role("button", name="Verifica").click()
    expect(page.get_by_role("heading", name="Le tue caselle")).to_be_visible()


@pytest.mark.timeout(300)
def test_two_operators_and_a_viewer_work_one_message_in_the_console(stack, browser, screens):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    mario = beta.add_mailbox("mario.rossi@pec.beta.test")
    pool = stack.sign_in(mfa="required")  # the REM rules make 2FA mandatory: everyone enrols
    for user, name, role in (("anna", "Anna Verdi", "operator"), ("bruno", "Bruno Neri", "operator"),
                             ("vera", "Vera Gialli", "viewer")):  # fmt: skip
        stack.add_person(
            user, f"{user}@alfa.test", name, {office.address: role}, password=SECRET_PASSWORD[user]
        )
    stack.add_person(
        "marco",
        "marco@alfa.test",
        "Marco Neri",
        {office.address: "manager"},
        password=SECRET_PASSWORD["marco"],
    )
    console = stack.serve_console()

    # meanwhile a small campaign goes out from the office: one recipient's box does not exist
    customers = [beta.add_mailbox(f"cliente{i}@pec.beta.test").address for i in range(1, 3)]
    net.script("cliente0@pec.beta.test", FAIL)
    upload(
        stack, "solleciti-prova",
        manifest={"mailbox": office.address, "name": "Solleciti di prova", "subject": "Sollecito – {{ ragione_sociale }}",
                  "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo la scadenza.\n", "receipt_type": "completa"},
        rows=[{"pec": a, "ragione_sociale": f"Cliente {i} S.r.l."} for i, a in enumerate(["cliente0@pec.beta.test", *customers])],
        files={},
    )  # fmt: skip
    stack.runner.run_until_idle(60)

    submit(
        beta, mario, office.address, subject="Richiesta di preventivo", msgid="<richiesta-7@pec.beta.test>",
        text="Buongiorno,\nin allegato il capitolato.\n",
        allegati=[("capitolato.pdf", "application/pdf", b"%PDF-1.7\n" + b"x" * 2000 + b"\n%%EOF\n")],
    )  # fmt: skip
    stack.runner.advance(POLL)
    net.wait_idle(60)

    anna = new_page(browser, accept_downloads=True)
    sign_in(anna, console.url, pool, "anna", screens)
    expect(anna.get_by_text("Accesso come Anna Verdi")).to_be_visible()
    screens.check(anna, "mailboxes")
    anna.get_by_role("link", name=f"Apri {office.address}").click()
    expect(anna.get_by_role("heading", name=f"Messaggi di {office.address}")).to_be_visible()
    tab = anna.get_by_role("navigation", name="Viste").get_by_role("link", name="Da gestire")
    expect(tab).to_have_attribute("aria-current", "page")  # a mailbox opens on "da gestire"
    row = anna.get_by_role("row").filter(has_text="Richiesta di preventivo")
    expect(row).to_have_count(1)
    expect(row.get_by_text("PEC", exact=True)).to_be_visible()
    expect(row.get_by_text("da gestire")).to_be_visible()
    screens.check(anna, "inbox")

    # word search through the API's token index; a word that is nowhere empties the list
    anna.get_by_label("Cerca (oggetto, mittente, destinatari)").fill("preventivo")
    anna.get_by_role("button", name="Cerca", exact=True).click()
    expect(anna.get_by_role("row").filter(has_text="Richiesta di preventivo")).to_have_count(1)
    anna.get_by_label("Cerca (oggetto, mittente, destinatari)").fill("fattura")
    anna.get_by_role("button", name="Cerca", exact=True).click()
    expect(anna.get_by_text("Nessun messaggio.")).to_be_visible()
    anna.get_by_role("link", name="Azzera filtri").click()

    # Bruno opens it too, while it is still da gestire
    bruno = new_page(browser)
    sign_in(bruno, console.url, pool, "bruno")
    bruno.get_by_role("link", name=f"Apri {office.address}").click()
    bruno.get_by_role("link", name="Richiesta di preventivo").click()
    expect(bruno.get_by_role("button", name="Prendi in carico")).to_be_visible()

    # Anna opens it: the text, the file, no reply before taking it in charge
    anna.get_by_role("link", name="Richiesta di preventivo").click()
    expect(anna.get_by_role("heading", name="Richiesta di preventivo", level=1)).to_be_visible()
    expect(anna.get_by_text("in allegato il capitolato.")).to_be_visible()
    expect(anna.locator(".facts")).to_contain_text("mario.rossi@pec.beta.test")  # not the envelope's sender
    expect(anna.get_by_role("button", name="Scarica capitolato.pdf")).to_be_visible()
    expect(anna.get_by_role("button", name="Rispondi")).to_have_count(0)
    screens.check(anna, "message")
    with anna.expect_download() as download:
        anna.get_by_role("button", name="Scarica capitolato.pdf").click()
    assert download.value.suggested_filename == "capitolato.pdf"

    anna.get_by_role("button", name="Prendi in carico").click()
    expect(anna.get_by_test_id("holder")).to_contain_text("in carico a anna dal")

    # Bruno, a step late: the API's 409 said in clear words, who and since when
    bruno.get_by_role("button", name="Prendi in carico").click()
    alert = bruno.get_by_role("alert")
    expect(alert).to_contain_text(
        re.compile(r"Il messaggio è in carico a anna dal \d\d/\d\d/\d{4}, \d\d:\d\d")
    )
    expect(bruno.get_by_test_id("holder")).to_contain_text("in carico a anna dal")  # as it is now
    expect(bruno.get_by_role("button", name="Prendi in carico")).to_have_count(0)
    screens.check(bruno, "conflict")

    # Anna replies
    anna.get_by_role("button", name="Rispondi").click()
    anna.get_by_label("Testo della risposta").fill("Gentile sig. Rossi,\nin allegato il nostro preventivo.\n")
    screens.check(anna, "reply")
    anna.get_by_role("button", name="Invia").click()
    expect(anna.get_by_role("status")).to_contain_text("Inviato")
    sent = anna.locator(".sent")
    expect(sent).to_have_count(1)
    expect(sent).to_contain_text("A mario.rossi@pec.beta.test")

    # the reply goes out through the sender; its receipts come back and are reconciled
    stack.runner.run_until_idle(120)
    net.wait_idle(60)
    for _ in range(2):
        stack.runner.advance(POLL)
        net.wait_idle(60)
    anna.get_by_role("button", name="Aggiorna").click()
    expect(sent).to_contain_text("consegnato")
    expect(sent.get_by_role("link", name="accettazione")).to_be_visible()
    expect(sent.get_by_role("link", name="avvenuta consegna")).to_be_visible()
    screens.check(anna, "receipts")
    with anna.expect_download() as download:  # the evidence pack: the message with the reply's receipts
        anna.get_by_role("button", name="Scarica il fascicolo probatorio (.zip)").click()
    assert re.fullmatch(r"fascicolo-[0-9a-f]{16}\.zip", download.value.suggested_filename)

    anna.get_by_role("button", name="Segna come gestito").click()
    anna.get_by_label("Nota su cosa è stato fatto (facoltativa)").fill("preventivo inviato")
    anna.get_by_role("button", name="Conferma").click()
    expect(anna.get_by_test_id("holder")).to_contain_text("gestito da anna il")
    expect(anna.get_by_test_id("holder")).to_contain_text("Nota: preventivo inviato")
    audit = anna.locator("table.audit")
    for words in ("ha preso in carico", "ha risposto", "ha segnato come gestito", "capitolato.pdf",
                  "ha scaricato il fascicolo probatorio"):  # fmt: skip
        expect(audit).to_contain_text(words)

    # Bruno sees who handled it; as an operator he may reopen it, not reply
    bruno.get_by_role("button", name="Aggiorna").click()
    expect(bruno.get_by_test_id("holder")).to_contain_text("gestito da anna")
    expect(bruno.get_by_role("button", name="Rispondi")).to_have_count(0)
    expect(bruno.get_by_role("button", name="Riapri")).to_be_visible()

    # the viewer: no act at all is offered, and the API refuses her reply anyway
    vera = new_page(browser, 390, 844, is_mobile=True)  # a phone
    sign_in(vera, console.url, pool, "vera")
    vera.get_by_role("link", name=f"Apri {office.address}").click()
    vera.get_by_role("link", name="Gestiti").click()
    expect(vera.get_by_role("link", name="Richiesta di preventivo")).to_be_visible()
    screens.check(vera, "inbox-phone")
    vera.get_by_role("link", name="Richiesta di preventivo").click()
    expect(vera.get_by_test_id("holder")).to_contain_text("gestito da anna")
    for act in ("Prendi in carico", "Rispondi", "Inoltra", "Riapri", "Assegna", "Elimina"):
        expect(vera.get_by_role("button", name=act)).to_have_count(0)
    screens.check(vera, "message-phone")
    refused = vera.evaluate(
        """async ([api, box, sha]) => {
            const token = JSON.parse(sessionStorage.getItem('pecflow.session')).token;
            const answer = await fetch(`${api}/mailboxes/${encodeURIComponent(box)}/messages/${sha}/reply`, {
                method: 'POST', headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
                body: JSON.stringify({text: 'Anche io'})});
            return [answer.status, await answer.json()];
        }""",
        [console.config()["api"], office.address, vera.url.rsplit("/", 1)[1].split("?")[0]],
    )
    assert refused[0] == 403 and refused[1]["code"] == "forbidden", refused

    # English on request; Italian formats stay
    vera.get_by_role("button", name="English").click()
    expect(vera.get_by_role("heading", name="History")).to_be_visible()
    screens.check(vera, "message-english")
    vera.get_by_role("button", name="Sign out").click()
    expect(vera.get_by_text("You have signed out.")).to_be_visible()
    vera.get_by_role("button", name="Italiano").click()

    # signing in again: now the code of her authenticator app (SOFTWARE_TOKEN_MFA)
    sign_in(vera, console.url, pool, "vera", screens)
    expect(vera.get_by_text("Accesso come Vera Gialli")).to_be_visible()

    # the manager: the campaign's panel, its numbers as the simulator made them, the failed recipient
    counters = settle(stack, "solleciti-prova")
    assert (counters["total"], counters["delivered"], counters["delivery_failures"]) == (3, 2, 1), counters
    marco = new_page(browser)
    sign_in(marco, console.url, pool, "marco")
    marco.get_by_role("link", name=f"Apri {office.address}").click()
    marco.get_by_role("link", name="Campagne").click()
    campaign_row = marco.get_by_role("row").filter(has_text="Solleciti di prova")
    expect(campaign_row).to_contain_text("completata")
    expect(campaign_row).to_contain_text("2/3")
    screens.check(marco, "campaigns")
    marco.get_by_role("link", name="Solleciti di prova").click()
    stats = marco.get_by_test_id("stats")
    expect(stats.locator(".stat-total dd")).to_have_text("3")
    expect(stats.locator(".stat-delivered dd")).to_have_text("2")
    expect(stats.locator(".stat-delivery_failures dd")).to_have_text("1")
    expect(marco.locator("table.recipients tbody tr")).to_have_count(3)
    screens.check(marco, "campaign")
    marco.get_by_label("Mostra").select_option(label="Errori di consegna")
    failed = marco.locator("table.recipients tbody tr")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("cliente0@pec.beta.test")
    expect(failed.get_by_role("link", name="errore di consegna")).to_be_visible()
    screens.check(marco, "campaign-failures")
    vera.get_by_role("link", name=f"Apri {office.address}").click()
    expect(vera.get_by_role("heading", name=f"Messaggi di {office.address}")).to_be_visible()
    expect(vera.get_by_role("link", name="Campagne")).to_have_count(0)  # a viewer has no campaigns

    shown = [re.sub(r"^.*-\d\d-", "", p.stem) for p in screens.taken]
    assert shown == [
        "sign-in", "mfa-setup", "mailboxes", "inbox", "message", "conflict", "reply", "receipts",
        "inbox-phone", "message-phone", "message-english", "sign-in", "mfa-code",
        "campaigns", "campaign", "campaign-failures",
    ]  # fmt: skip
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == [], failures[0].error if failures else None
