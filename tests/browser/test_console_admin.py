"""Administration in the web console, in Chromium against the local stack: an admin adds a person
with a role, gives a role to someone already registered, changes and takes away roles, disables an
account, reads a mailbox's health (last poll, quota used in the window, messages da gestire, the
messages held in quarantine with why) and is told in plain Italian why a mailbox could not be added; on a laptop and on a phone. A person who
administers nothing sees no administration, and the API refuses them anyway. Each screen
photographed and checked by axe-core (conftest)."""

from __future__ import annotations

import smtplib
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from local.api_server import json_request
from local.pecbuild import builder
from pecflow import bootstrap

POLL = 5 * 60
PASSWORD = {"carla": "Carla-pw-2026", "otto": "Otto-pw-2026"}
PHONE = {"width": 390, "height": 844}
RULES = {
    "version": 1,
    "accepted_formats": {"allow": ["pdf", "xml", "p7m", "text"]},
    "rules": [{"name": "Fornitori", "when": {"sender_domain": ["posta-ordinaria.test"]},
               "then": {"tag": ["fornitori"]}}],
}  # fmt: skip


def signed_in(browser, url, username, **viewport):
    """MFA optional and not enrolled: the password alone."""
    size = viewport or {"width": 1280, "height": 900}
    page = browser.new_context(viewport=size, locale="it-IT", timezone_id="Europe/Rome").new_page()
    page.goto(url)
    page.get_by_label("Nome utente").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD[username])
    page.get_by_role("button", name="Accedi", exact=True).click()
    expect(page.get_by_role("heading", name="Le tue caselle")).to_be_visible()
    return page


@pytest.mark.timeout(240)
def test_an_admin_manages_people_and_reads_mailbox_health_a_non_admin_sees_nothing(stack, browser, screens):
    net = stack.network
    delta = net.add_provider(builder.Gestore("Delta PEC S.p.A.", "pec.delta.test"))
    office = stack.add_company_mailbox(delta, "segreteria@pec.delta.test")
    stack.sign_in()  # MFA optional
    carla_token = stack.add_person(
        "carla", "carla@delta.test", "Carla Bianchi", {office.address: "admin"}, password=PASSWORD["carla"]
    )
    otto_token = stack.add_person(
        "otto", "otto@delta.test", "Otto Rossi", {office.address: "operator"}, password=PASSWORD["otto"]
    )
    stack.add_person("elena", "elena@delta.test", "Elena Neri")  # registered, no role here yet
    console = stack.serve_console()
    api = console.config()["api"]
    bootstrap.rules_desk(stack.deployment()).set(None, office.address, RULES, actor="test")
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    supplier = beta.add_mailbox("magazzino@pec.beta.test")
    disguised = builder.messaggio_originale(
        mittente=supplier.address, destinatari=[office.address], oggetto="Listino prezzi",
        testo="In allegato il listino.\n",
        allegati=[("listino.pdf", "application/pdf", b"MZ\x90\x00" + b"\0" * 500)],  # a program, not a PDF
    )  # fmt: skip
    with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:  # one message waits to be handled
        mx.sendmail(
            "fornitore@posta-ordinaria.test",
            [office.address],
            f"From: fornitore@posta-ordinaria.test\r\nTo: {office.address}\r\nSubject: Fattura di novembre\r\n"
            "Message-ID: <fattura-11@posta-ordinaria.test>\r\n\r\nIn allegato la fattura.\r\n".encode(),
        )
    with smtplib.SMTP_SSL(beta.host, beta.port, context=beta.ssl_context(), timeout=20) as smtp:
        smtp.login(supplier.address, supplier.password)
        smtp.sendmail(supplier.address, [office.address], disguised)  # a certified message the rules hold
    stack.runner.advance(POLL)
    net.wait_idle(60)

    # the admin: administration in the bar, her mailbox listed as working
    carla = signed_in(browser, console.url, "carla")
    carla.get_by_role("link", name="Amministrazione").click()
    expect(carla.get_by_role("heading", name="Amministrazione", exact=True)).to_be_visible()
    row = carla.locator("table.admin-boxes tbody tr").filter(has_text=office.address)
    expect(row.get_by_text("funziona")).to_be_visible()
    expect(row.get_by_text("Aruba (250 messaggi ogni 20 minuti)")).to_be_visible()
    expect(carla.get_by_test_id("person-otto")).to_be_visible()
    mine = carla.get_by_test_id("person-carla")  # her own access is not hers to take away here
    expect(mine.get_by_role("button")).to_have_count(0)
    expect(carla.locator("#new-role")).to_have_value("operator")
    screens.check(carla, "admin")

    # a new person with a role on the mailbox
    carla.locator("#new-username").fill("dario")
    carla.get_by_label("E-mail").fill("dario@delta.test")
    carla.get_by_label("Nome e cognome").fill("Dario Verdi")
    carla.locator("#new-role").select_option("operator")
    carla.get_by_role("button", name="Aggiungi la persona").click()
    expect(carla.get_by_role("status").filter(has_text="dario aggiunto con ruolo operatore.")).to_be_visible()
    dario = carla.get_by_test_id("person-dario")
    expect(dario.get_by_text("dario@delta.test")).to_be_visible()
    # a username already taken: pointed to the form for people already registered
    carla.locator("#new-username").fill("otto")
    carla.get_by_label("E-mail").fill("otto.bis@delta.test")
    carla.get_by_role("button", name="Aggiungi la persona").click()
    expect(carla.get_by_role("alert")).to_have_text(
        "Esiste già una persona con nome utente otto: per darle un ruolo su questa casella usa "
        "«Dai un ruolo a una persona già registrata»."
    )
    # someone already registered gets a role
    carla.locator("#grant-username").fill("elena")
    carla.locator("#grant-role").select_option("viewer")
    carla.get_by_role("button", name="Dai il ruolo").click()
    expect(carla.get_by_test_id("person-elena")).to_be_visible()
    expect(carla.get_by_label("Ruolo di elena")).to_have_value("viewer")
    # a role changed, an account disabled, a role taken away
    carla.get_by_label("Ruolo di dario").select_option("manager")
    expect(carla.get_by_role("status").filter(has_text="dario ha ora il ruolo responsabile.")).to_be_visible()
    dario.get_by_role("button", name="Disattiva dario").click()
    expect(dario.get_by_text("disattivato")).to_be_visible()
    carla.get_by_test_id("person-elena").get_by_role("button", name="Togli l’accesso elena").click()
    expect(carla.get_by_test_id("person-elena")).to_have_count(0)
    screens.check(carla, "admin-people-changed")
    status, people = json_request(f"{api}/people?mailbox={quote(office.address)}", token=carla_token)
    assert status == 200
    assert {p["username"]: (p["roles"].get(office.address), p["enabled"]) for p in people} == {
        "carla": ("admin", True), "otto": ("operator", True), "dario": ("manager", False),
    }  # fmt: skip

    # the mailbox's health
    carla.get_by_role("link", name=office.address).click()
    expect(carla.get_by_role("heading", name=f"Stato della casella {office.address}")).to_be_visible()
    health = carla.get_by_test_id("health")
    # the supplier's message and the held one: quarantine keeps a message waiting for a person
    expect(health.locator(".stat").filter(has_text="Messaggi da gestire").locator("dd")).to_have_text("2")
    sends = health.locator(".stat").filter(has_text="Invii nella finestra attuale")
    expect(sends.locator("dt")).to_have_text(
        "Invii nella finestra attuale (in qualsiasi intervallo di 20 minuti)"
    )
    expect(sends.locator("dd")).to_have_text("0 / 250")
    expect(health.locator(".stat").filter(has_text="Ultima lettura riuscita").locator("dd")).not_to_have_text(
        "mai"
    )
    held = carla.get_by_test_id("quarantine")
    expect(held.get_by_role("heading", name="Messaggi in quarantena")).to_be_visible()
    expect(held.locator("tbody tr")).to_have_count(1)
    expect(held.locator("tbody tr")).to_contain_text("Listino prezzi")
    expect(held.locator("tbody tr")).to_contain_text("Fermato da una regola: ")
    expect(held.locator("tbody tr")).to_contain_text("listino.pdf")
    expect(health.locator(".stat").filter(has_text="Messaggi in quarantena").locator("dd")).to_have_text("1")
    screens.check(carla, "mailbox-health")
    # the held message opens from there; the supplier's message carries its rule's tag in the inbox
    held.get_by_role("link", name="Listino prezzi").click()
    expect(carla.get_by_role("heading", name="Listino prezzi")).to_be_visible()
    carla.go_back()
    carla.goto(f"{console.url}#/box/{quote(office.address)}")
    supplier = carla.locator("tbody tr").filter(has_text="Fattura di novembre")
    expect(supplier.locator(".badge-tag")).to_have_text("Etichetta: fornitori")
    screens.check(carla, "inbox-tags")
    carla.go_back()

    # a mailbox whose server does not answer is not added, and she is told why
    carla.get_by_role("link", name="Torna all’amministrazione").click()
    carla.get_by_role("link", name="Aggiungi una casella").click()
    carla.get_by_label("Indirizzo della casella PEC").fill("protocollo@pec.delta.test")
    carla.get_by_label("Password della casella").fill("una-password")
    carla.get_by_label("Server di ricezione (IMAP)").fill("127.0.0.1")
    carla.get_by_label("Porta IMAP").fill("1")
    carla.get_by_label("Contro la casella piena").select_option("after-days")
    expect(carla.get_by_label("Giorni")).to_have_value("90")
    screens.check(carla, "add-mailbox")
    carla.get_by_role("button", name="Verifica l’accesso e aggiungi").click()
    refusal = carla.get_by_role("alert")
    expect(refusal).to_contain_text(
        "Casella non aggiunta: Il server di ricezione (IMAP) (127.0.0.1:1) non risponde: controlla l'indirizzo e la porta."
    )
    expect(refusal).to_contain_text("Nulla è stato salvato.")
    screens.check(carla, "add-mailbox-refused")
    assert json_request(f"{api}/mailboxes", token=carla_token)[1][0]["address"] == office.address
    assert len(json_request(f"{api}/mailboxes", token=carla_token)[1]) == 1

    # the same screens on a phone
    phone = signed_in(browser, console.url, "carla", **PHONE)
    phone.get_by_role("link", name="Amministrazione").click()
    expect(phone.get_by_test_id("person-otto")).to_be_visible()
    screens.check(phone, "admin-phone")
    phone.get_by_role("link", name=office.address).click()
    expect(phone.get_by_test_id("health")).to_be_visible()
    screens.check(phone, "mailbox-health-phone")

    # an operator: no administration shown, its address shows her mailboxes; the API refuses her
    otto = signed_in(browser, console.url, "otto")
    expect(otto.get_by_role("link", name=f"Apri {office.address}")).to_be_visible()
    expect(otto.get_by_role("link", name="Amministrazione")).to_have_count(0)
    otto.goto(console.url + "#/admin")
    expect(otto.get_by_role("heading", name="Le tue caselle")).to_be_visible()
    expect(otto.get_by_role("heading", name="Amministrazione")).to_have_count(0)
    screens.check(otto, "operator-no-admin")
    assert json_request(f"{api}/mailboxes", token=otto_token) == (200, [])
    status, problem = json_request(f"{api}/mailboxes/{quote(office.address)}/health", token=otto_token)
    assert status == 403 and problem["code"] == "forbidden"
    status, problem = json_request(f"{api}/people?mailbox={quote(office.address)}", token=otto_token)
    assert status == 403
    body = {"address": "altra@pec.delta.test", "password": "x", "imap_host": "127.0.0.1", "imap_port": 1}
    status, problem = json_request(f"{api}/mailboxes", "POST", token=otto_token, body=body)
    assert status == 403 and problem["code"] == "forbidden"
