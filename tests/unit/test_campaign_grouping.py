"""One PEC per group of rows (issue 18): `group_by`, the `righe` list, sums of Italian amounts,
every row's attachment, conflicts reported with both rows, a fixed CC (never a BCC), and the
grouping of a million rows in constant memory, the CSV sorted or not."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from pecflow.domain import campaign
from pecflow.domain.campaign import (
    Code,
    DictAttachmentIndex,
    GroupSpill,
    Manifest,
    ManifestError,
    Row,
    group_values,
    grouped,
    render_message,
    validate,
)
from pecflow.domain.reconcile import State
from pecflow.domain.records import CampaignRecord, JobRecord, NewJob
from pecflow.services.sending import CampaignMessages, envelope, own_attachments

MANIFEST = {
    "mailbox": "ufficio@pec.azienda.it",
    "subject": "Fatture scadute – {{ ragione_sociale }}",
    "body_text": "Gentile {{ ragione_sociale }},\n"
    "{% for r in righe %}{{ r.numero }} – {{ r.importo|importo }}\n{% endfor %}"
    "Totale: {{ righe|sum(attribute='importo')|importo }}\n",
    "group_by": "PEC",
    "attachment_column": "fattura",
}
HEADER = "PEC;Ragione Sociale;Numero;Importo;Fattura\r\n"
FILES = DictAttachmentIndex({f"f{i}.pdf": 1000 for i in range(1, 10)})


def check(text: str, manifest: dict | None = None, files=FILES) -> campaign.ValidationReport:
    return validate(Manifest.from_dict(manifest or MANIFEST), io.BytesIO(text.encode()), files)


def messages(report: campaign.ValidationReport) -> list[str]:
    return [issue.message for issue in report.errors]


# --- the groups ------------------------------------------------------------------------------------------
def test_groups_keep_the_order_of_their_first_row_and_the_rows_theirs():
    rows = [
        Row(n, {"pec": p})
        for n, p in [(2, "b@x.it"), (3, "A@x.it"), (4, "c@x.it"), (5, "a@x.it "), (6, "b@x.it")]
    ]
    groups = list(grouped(rows, "pec"))
    assert [(g.first_row, g.numbers) for g in groups] == [(2, (2, 6)), (3, (3, 5)), (4, (4,))]
    assert [g.key for g in groups] == ["b@x.it", "a@x.it", "c@x.it"]  # trimmed, capitals ignored


def test_a_group_over_the_limit_is_never_loaded():
    with GroupSpill(max_rows=2) as spill:
        for n in range(2, 6):
            spill.add("same", Row(n, {"pec": "same"}))
        spill.add("other", Row(6, {"pec": "other"}))
        [big, small] = list(spill.groups())
        assert (big.count, big.rows) == (4, ())
        assert small.numbers == (6,)
        assert [(first, count) for _key, first, count, _chars in spill.oversized()] == [(2, 4)]


def _group_a_million(ordered: bool, out) -> None:
    """In a child process: group 1,000,000 rows (333,334 groups of three), report the groups and
    how much the peak resident memory grew meanwhile (VmHWM: this process's own peak)."""

    def status(field: str) -> int:
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(field + ":"))

    count, groups = 1_000_000, 333_334

    def rows():
        for i in range(count):
            customer = i // 3 if ordered else (i * 7919) % groups  # 7919 is prime: every group thrice
            yield Row(i + 2, {"pec": f"cliente{customer}@pec.it", "numero": str(i), "importo": "1.234,56"})

    list(grouped((Row(n, {"pec": "warm"}) for n in range(2, 5)), "pec"))  # modules and sqlite loaded
    before = status("VmRSS")
    seen = rows_seen = 0
    last_first = 0
    in_order = True
    for group in grouped(rows(), "pec"):
        seen += 1
        rows_seen += len(group.rows)
        in_order &= group.first_row > last_first and list(group.numbers) == sorted(group.numbers)
        last_first = group.first_row
    out.send((seen, rows_seen, in_order, status("VmHWM") - before))


@pytest.mark.parametrize("ordered", [True, False], ids=["sorted", "unsorted"])
def test_a_million_rows_are_grouped_in_constant_memory(ordered):
    """What would hold the rows in memory (a dict of lists) needs ~500 MB here; the spill to
    disk keeps the growth to sqlite's page cache, one batch and one group."""
    parent, child = multiprocessing.get_context("spawn").Pipe()
    worker = multiprocessing.get_context("spawn").Process(target=_group_a_million, args=(ordered, child))
    worker.start()
    worker.join(600)
    groups, rows, in_order, growth_kib = parent.recv()
    assert worker.exitcode == 0
    assert (groups, rows, in_order) == (333_334, 1_000_000, True)
    assert growth_kib < 40 * 1024, f"peak memory grew by {growth_kib / 1024:.0f} MiB"


# --- the templates ------------------------------------------------------------------------------------------
def rendered(rows: list[dict], manifest: dict | None = None, **kwargs) -> bytes:
    m = Manifest.from_dict(manifest or MANIFEST)
    return render_message(
        m,
        group_values(m, [Row(n, r) for n, r in enumerate(rows, 2)]),
        mailbox=m.mailbox,
        message_id="<t@pec.azienda.it>",
        date=datetime(2026, 3, 2, 9, tzinfo=UTC),
        **kwargs,
    )


def body(raw: bytes) -> str:
    return (
        message_from_bytes(raw, policy=policy.default)
        .get_body(("plain",))
        .get_content()
        .replace("\r\n", "\n")
    )


ROSSI = {"pec": "rossi@pec.it", "ragione_sociale": "Rossi S.r.l.", "fattura": "f1.pdf"}


def test_righe_lists_every_row_and_sums_italian_amounts():
    raw = rendered(
        [
            {**ROSSI, "numero": "12/2025", "importo": "1.234,56"},
            {**ROSSI, "numero": "13/2025", "importo": "€ 10,5"},
            {**ROSSI, "numero": "14/2025", "importo": "1.000"},
        ]
    )
    assert body(raw) == (
        "Gentile Rossi S.r.l.,\n12/2025 – 1.234,56 €\n13/2025 – 10,50 €\n14/2025 – 1.000,00 €\n"
        "Totale: 2.245,06 €\n"
    )


def test_a_sum_of_what_is_no_amount_says_which_value():
    with pytest.raises(campaign.RenderError, match="'dieci' is not an amount"):
        rendered([{**ROSSI, "numero": "1", "importo": "dieci"}])


def test_the_generated_pdf_sees_the_group():
    manifest = {
        **MANIFEST,
        "pdf": {
            "filename": "estratto-{{ ragione_sociale }}",
            "template": "{% for r in righe %}Fattura {{ r.numero }}\n{% endfor %}{{ righe|length }} fatture",
        },
    }
    m = Manifest.from_dict(manifest)
    values = group_values(
        m,
        [
            Row(2, {**ROSSI, "numero": "A1", "importo": "1"}),
            Row(3, {**ROSSI, "numero": "A2", "importo": "2"}),
        ],
    )
    out = campaign.compile_templates(m).render({**values})
    assert (
        out.pdf_text == "Fattura A1\nFattura A2\n2 fatture" and out.pdf_filename == "estratto-Rossi S.r.l.pdf"
    )


def test_every_rows_attachment_is_attached_once():
    m = Manifest.from_dict({**MANIFEST, "attachments": ["condizioni.pdf"]})
    rows = [
        {**ROSSI, "fattura": name, "numero": str(i)} for i, name in enumerate(["f1.pdf", "f2.pdf", "f1.pdf"])
    ]
    values = group_values(m, [Row(n, r) for n, r in enumerate(rows, 2)])
    assert own_attachments(m, values) == ["f1.pdf", "f2.pdf"]
    files = {"condizioni.pdf": b"%PDF c", "f1.pdf": b"%PDF 1", "f2.pdf": b"%PDF 2"}

    class Files:
        def read(self, name, pin=None):
            return files[name.removeprefix("attachments/")]

    job = JobRecord.from_item(
        NewJob(
            "<g@pec.azienda.it>", "rossi@pec.it", m.mailbox, "c1", 2, 1, {**values, "importo": "1"}, (2, 3, 4)
        ).as_dict()
        | {"state": "pending"}
    )
    item = CampaignRecord(campaign_id="c1", manifest={**m.to_dict(), "body_text": "{{ righe|length }} righe"})
    raw = CampaignMessages(lambda _campaign: Files()).render(item, job, job.message_id, datetime.now(UTC))
    parsed = message_from_bytes(raw, policy=policy.default)
    names = [part.get_filename() for part in parsed.iter_attachments()]
    assert names == ["condizioni.pdf", "f1.pdf", "f2.pdf"] and body(raw) == "3 righe\n"
    assert job.rows == (2, 3, 4) and job.rows_covered == 3


# --- the validation ---------------------------------------------------------------------------------------------
def test_rows_of_one_customer_make_one_message():
    report = check(
        HEADER
        + "rossi@pec.it;Rossi S.r.l.;1;100;f1.pdf\r\n"
        + "bianchi@pec.it;Bianchi S.p.A.;2;200;f2.pdf\r\n"
        + "ROSSI@pec.it;Rossi S.r.l.;3;1.234,56;f3.pdf\r\n"
    )
    assert report.valid, messages(report)
    assert (report.rows, report.messages, report.summary()["messages"]) == (3, 2, 2)


def test_a_conflict_inside_a_group_names_both_rows():
    report = check(
        HEADER
        + "rossi@pec.it;Rossi S.r.l.;1;100;f1.pdf\r\n"
        + "bianchi@pec.it;Bianchi S.p.A.;2;200;f2.pdf\r\n"
        + "rossi@pec.it;Rossi Mario;3;300;f3.pdf\r\n"
    )
    assert not report.valid and report.errors_by_code == {Code.GROUP_CONFLICT: 1}
    [issue] = report.errors
    assert (issue.row, issue.column) == (4, "Ragione Sociale")
    assert "'Rossi Mario' here but 'Rossi S.r.l.' on row 2" in issue.reason


def test_grouped_by_a_customer_code_the_address_must_agree_and_not_repeat():
    manifest = {**MANIFEST, "group_by": "Codice"}
    header = "Codice;" + HEADER
    report = check(
        header
        + "C1;rossi@pec.it;Rossi;1;100;f1.pdf\r\n"
        + "C1;altro@pec.it;Rossi;2;100;f1.pdf\r\n"
        + "C2;bianchi@pec.it;Bianchi;3;100;f1.pdf\r\n"
        + "C3;BIANCHI@pec.it;Bianchi;4;100;f1.pdf\r\n",
        manifest,
    )
    assert report.errors_by_code == {Code.GROUP_CONFLICT: 1, Code.ADDRESS_DUPLICATE: 1}
    conflict, duplicate = report.errors
    assert (conflict.row, conflict.column) == (3, "PEC")
    assert duplicate.row == 5 and "message starting on row 4" in duplicate.reason


def test_the_group_column_must_exist_and_righe_is_reserved():
    report = check("Mail;Righe;Ragione Sociale;Numero;Importo;Fattura\r\nr@pec.it;1;R;1;1;f1.pdf\r\n")
    assert {Code.GROUP_COLUMN_MISSING, Code.COLUMN_RESERVED} <= set(report.errors_by_code)
    assert any("no column 'PEC' to group the rows by" in m for m in messages(report))


def test_a_row_without_a_value_to_group_by_is_an_error():
    manifest = {**MANIFEST, "group_by": "Numero"}
    report = check(
        HEADER + "rossi@pec.it;Rossi;1;1;f1.pdf\r\n" + "bianchi@pec.it;Bianchi;;1;f1.pdf\r\n", manifest
    )
    assert report.errors_by_code == {Code.VALUE_EMPTY: 1}
    assert report.errors[0].message == "row 3, column Numero: empty: the rows are grouped by 'Numero'"


def test_a_group_too_large_for_one_message():
    rows = "".join(f"rossi@pec.it;Rossi;{i};1;f1.pdf\r\n" for i in range(campaign.MAX_GROUP_ROWS + 1))
    report = check(HEADER + rows + "bianchi@pec.it;Bianchi;1;1;f1.pdf\r\n")
    assert report.errors_by_code == {Code.GROUP_TOO_LARGE: 1}
    assert report.errors[0].row == 2 and "1,001 rows" in report.errors[0].reason


def test_the_size_of_a_group_counts_every_rows_attachment():
    files = DictAttachmentIndex({f"f{i}.pdf": 4_000_000 for i in range(1, 10)})
    manifest = {**MANIFEST, "max_message_bytes": 30_000_000}
    rows = "".join(f"rossi@pec.it;Rossi;{i};1;f{i}.pdf\r\n" for i in range(1, 7))
    report = check(HEADER + rows, manifest, files)
    assert report.errors_by_code == {Code.MESSAGE_TOO_LARGE: 1}
    assert report.errors[0].reason.startswith("the message of rows 2, 3, 4, 5, 6, 7: the message would be")


# --- CC, never BCC --------------------------------------------------------------------------------------------
def test_bcc_is_refused_with_the_reason():
    with pytest.raises(ManifestError) as caught:
        Manifest.from_dict({**MANIFEST, "bcc": "archivio@pec.azienda.it"})
    assert "PEC has no blind copy" in str(caught.value) and 'use "cc"' in str(caught.value)


def test_a_cc_must_be_an_address_other_than_the_mailbox():
    with pytest.raises(ManifestError, match="'archivio@' is not valid here: expected a PEC address"):
        Manifest.from_dict({**MANIFEST, "cc": "archivio@"})
    with pytest.raises(ManifestError, match="the sending mailbox itself"):
        Manifest.from_dict({**MANIFEST, "cc": "UFFICIO@pec.azienda.it"})


def test_the_cc_is_on_every_message_and_in_its_envelope_once():
    manifest = {**MANIFEST, "cc": "archivio@pec.azienda.it"}
    raw = rendered([{**ROSSI, "numero": "1", "importo": "1"}], manifest)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"] == "rossi@pec.it" and parsed["Cc"] == "archivio@pec.azienda.it"
    item = CampaignRecord(campaign_id="c1", manifest=manifest)
    job = JobRecord("<x@y.it>", "rossi@pec.it", State.PENDING, campaign_id="c1")
    assert envelope(item, job) == ["rossi@pec.it", "archivio@pec.azienda.it"]
    assert envelope(CampaignRecord(campaign_id="c1", manifest=MANIFEST), job) == ["rossi@pec.it"]


def test_a_test_send_goes_to_the_chosen_address_alone_marked():
    manifest = {**MANIFEST, "cc": "archivio@pec.azienda.it"}
    raw = rendered([{**ROSSI, "numero": "1", "importo": "1"}], manifest, test_to="prova@pec.azienda.it")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"] == "prova@pec.azienda.it" and parsed["Cc"] is None
    assert parsed["Subject"] == "[PROVA] Fatture scadute – Rossi S.r.l." and parsed["X-Pecflow-Prova"]
    assert b"rossi@pec.it" not in raw


def test_scratch_files_are_removed():
    spill = GroupSpill()
    folder = os.path.dirname(spill.db.execute("PRAGMA database_list").fetchone()[2])
    spill.add("a", Row(2, {"pec": "a"}))
    list(spill.groups())
    spill.close()
    assert not os.path.exists(folder)


# --- the provider's terms -------------------------------------------------------------------------------------
def test_every_quota_preset_carries_its_providers_terms():
    from pecflow.domain import quota

    assert set(quota.TERMS) == set(quota.PRESETS)
    assert quota.terms_of("LegalMail").needs_agreement
    assert any("500 recipients" in line for line in quota.terms_of("aruba").terms)
    assert quota.terms_of("custom:50/10m") is None
    assert quota.preset_of_domain("mario.rossi@legalmail.it") == "legalmail"
    assert quota.preset_of_domain("ufficio@pec.azienda.it") is None


def test_validate_shows_the_providers_terms(tmp_path, capsys):
    from pecflow import cli

    (tmp_path / "manifest.json").write_text(json.dumps({**MANIFEST, "mailbox": "ufficio@legalmail.it"}))
    (tmp_path / "recipients.csv").write_text(HEADER + "rossi@pec.it;Rossi;1;1;f1.pdf\r\n")
    (tmp_path / "attachments").mkdir()
    (tmp_path / "attachments" / "f1.pdf").write_bytes(b"%PDF")
    args = [
        "campaign",
        "validate",
        "--manifest",
        str(tmp_path / "manifest.json"),
        "--csv",
        str(tmp_path / "recipients.csv"),
    ]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "VALID: 1 recipients ready" in out
    assert "provider terms — Legalmail (InfoCert), preset legalmail (from the mailbox's domain)" in out
    assert "forbids automated sending without the user's direct intervention" in out
    assert cli.main([*args, "--provider", "aruba"]) == 0
    assert "at most 500 recipients per message" in capsys.readouterr().out


def test_the_copys_own_receipts_are_expected_and_move_no_job():
    """The cc is a recipient of the message with no job: its consegna is matched, moves nothing
    and is no problem; a receipt for anybody else still is."""
    from types import SimpleNamespace

    from pecflow.domain.reconcile import reconcile_receipt
    from pecflow.pec import kinds
    from tests import fakes

    outgoing = fakes.FakeOutgoingStore(fakes.FakeCampaignStore())
    job = NewJob(
        "<c@pec.azienda.it>",
        "rossi@pec.it",
        "ufficio@pec.azienda.it",
        "c1",
        2,
        1,
        {},
        None,
        "Archivio@pec.azienda.it",
    )
    outgoing.add_jobs([job.as_dict()])
    assert outgoing.message(job.message_id)["cc"] == ["archivio@pec.azienda.it"]

    def consegna(to: str):
        return SimpleNamespace(
            kind=kinds.AVVENUTA_CONSEGNA, ref_message_id=job.message_id, identificativo=None, recipients=(),
            timestamp=None, delivered_to=to, error=None, error_detail=None, receipt_type="breve", rem=None,
            covered=(),
        )  # fmt: skip

    copy = reconcile_receipt(outgoing, consegna("archivio@pec.azienda.it"), "r1")
    assert (copy.status, copy.moves, copy.problems) == ("matched", {}, [])
    stranger = reconcile_receipt(outgoing, consegna("altro@pec.it"), "r2")
    assert "not a recipient of the original" in stranger.problems[0]
