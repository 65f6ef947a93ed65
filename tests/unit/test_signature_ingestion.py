"""The provider's signature at ingestion: checked for every message the poller records, on the
record (outcome, why, signer, time), counted for CloudWatch (an `invalid` one alarms); the trust
anchors read from a file or S3 (a bundle that cannot be read never stops the poller), and
`pecflow trust import/list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics
from cryptography.hazmat.primitives.serialization import Encoding
from moto import mock_aws

from local.pecbuild.builder import ARUBA, Autorita, Destinatario, Firma, busta_trasporto, messaggio_originale
from pecflow import cli
from pecflow.adapters.trust import anchors_location, load_anchors, write_bundle
from pecflow.domain.records import MessageRecord
from pecflow.pec import signature
from pecflow.pec.message import parse
from pecflow.pec.signature import TrustAnchors, check_message
from pecflow.services.polling import PollOutcome, PollRequest
from pecflow.services.receive import Ingestor, PollResult
from pecflow.telemetry import report_poll
from tests import fakes

BOX = "ufficio@pec.azienda.test"
PASSWORD = "segreta"
CET = timezone(timedelta(hours=1))
INVIO = datetime(2026, 3, 2, 10, 15, tzinfo=CET)
ORIGINALE = messaggio_originale(
    mittente="mittente@pec.altro.test",
    destinatari=[BOX],
    oggetto="Diffida",
    testo="Si diffida la Vostra società.\n",
    message_id="<d-1@pec.altro.test>",
    data=INVIO,
)


def _busta(n: int) -> bytes:
    return busta_trasporto(
        ORIGINALE.replace(b"<d-1@", f"<d-{n}@".encode()),
        gestore=ARUBA,
        identificativo=f"opec.{n}@pec.aruba.it",
        data=INVIO,
        destinatari=[Destinatario(BOX)],
    )


def _forged(raw: bytes) -> bytes:
    at = raw.index(b"Si diffida")
    return raw[:at] + b"N" + raw[at + 1 :]


def _poll(raws, anchors: TrustAnchors):
    server = fakes.FakeImapServer()
    account = server.add_account(BOX, PASSWORD)
    for raw in raws:
        account.append(raw, when=INVIO)
    messages = fakes.FakeMessageStore()
    ingestor = Ingestor(
        archive=fakes.FakeArchive(),
        messages=messages,
        mailboxes=fakes.FakeMailboxStore(),
        outgoing=fakes.FakeOutgoingStore(),
        check_signature=lambda msg, received: check_message(msg, anchors, received=received),
    )
    config = fakes.config(BOX)
    session = server.open(config, PASSWORD)
    try:
        result = ingestor.poll(config, session)
    finally:
        session.close()
    return result, sorted(messages.records(BOX), key=lambda r: r["uid"])


def test_every_recorded_message_carries_its_signature_verdict():
    anchors = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
    result, records = _poll([_busta(1), _forged(_busta(2)), ORIGINALE], anchors)
    assert [r["signature"] for r in records] == ["valid", "invalid", "missing"]
    valid, invalid, unsigned = records
    assert valid["signer"]["subject"] == "CN=Posta Certificata Aruba PEC S.p.A.,O=Aruba PEC S.p.A.,C=IT"
    assert valid["signer"]["email"] == "posta-certificata@pec.aruba.it"
    assert valid["signed_at"] == INVIO.isoformat() and valid["signed_at_from"] == "daticert"
    assert "changed after signing" in invalid["signature_detail"]
    assert "signer" not in unsigned or unsigned["signer"] is None
    assert result.signatures == {"valid": 1, "invalid": 1, "missing": 1}
    assert len(result.invalid_signatures) == 1 and result.invalid_signatures[0].startswith("UID 2: ")
    # the typed record the API and the inbox read back
    typed = MessageRecord.from_item(valid)
    assert typed.signature == "valid" and typed.signer["serial"] == valid["signer"]["serial"]
    assert "signature" in typed.as_dict() and not typed.extra


def test_without_anchors_the_same_messages_are_untrusted():
    result, records = _poll([_busta(1)], TrustAnchors())
    assert records[0]["signature"] == "untrusted"
    assert "no trust anchors" in records[0]["signature_detail"]
    assert result.signatures == {"untrusted": 1}


def test_a_rem_message_records_its_evidence_signature_and_an_invalid_one_alarms():
    """A REM message's evidence carries its own XAdES signature: recorded as `rem.signature` (with
    its signer and time, beside the S/MIME `signature`), counted in the same outcomes, and an
    invalid one listed for the alarm like an invalid S/MIME signature."""
    from local.pecbuild import rem_builder
    from pecflow.pec import rem

    def receipt(n: int, **options) -> bytes:
        return rem_builder.rem_receipt(
            "ContentConsignment", ORIGINALE, gestore=ARUBA, message_id=f"REM-{n}@pec.aruba.it",
            data=INVIO, recipient=BOX, evidence_id=f"EV-{n}", **options,
        )  # fmt: skip

    xml = rem.survey(parse(receipt(2)).root).evidence.decoded()
    forged = xml.replace(BOX.encode(), b"altro." + BOX.encode(), 1)
    assert forged != xml
    anchors = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
    result, records = _poll(
        [receipt(1), receipt(2, deviations=rem_builder.Deviations(evidence=forged))], anchors
    )
    valid, invalid = records
    assert valid["signature"] == "valid" and valid["rem"]["signature"] == "valid"
    assert valid["rem"]["signer"]["subject"] == valid["signer"]["subject"]
    assert (
        valid["rem"]["signed_at"] == INVIO.astimezone(UTC).isoformat()
        and valid["rem"]["signed_at_from"] == "signingTime"
    )
    assert valid["rem"]["event"] == "ContentConsignment"  # the REM fields stay beside it
    assert invalid["signature"] == "valid" and invalid["rem"]["signature"] == "invalid"
    assert "changed after signing" in invalid["rem"]["signature_detail"]
    assert result.signatures == {"valid": 3, "invalid": 1}
    assert result.invalid_signatures == [f"UID 2: REM evidence: {invalid['rem']['signature_detail']}"]
    typed = MessageRecord.from_item(invalid)
    assert typed.rem is not None and typed.rem["signature"] == "invalid"


def test_metrics_count_outcomes_and_invalid_alarms(capsys):
    result = PollResult(BOX, fetched=3, recorded=3, signatures={"valid": 2, "invalid": 1})
    result.invalid_signatures.append("UID 7: the signed part was changed after signing")
    metrics = EphemeralMetrics(namespace="pecflow", service="pecflow")

    class Logger:
        def __init__(self):
            self.lines = []

        def info(self, text, extra=None):
            self.lines.append(("info", text, extra))

        def error(self, text, extra=None):
            self.lines.append(("error", text, extra))

        warning = error

    log = Logger()
    report_poll(PollOutcome(PollRequest(BOX, "t"), result), 12.0, metrics, log)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_outcome = {e["Outcome"]: e["ProviderSignatures"] for e in emitted if "Outcome" in e}
    assert by_outcome == {"valid": [2.0], "invalid": [1.0]} or by_outcome == {"valid": 2.0, "invalid": 1.0}
    flushed = metrics.serialize_metric_set()
    assert flushed["ProviderSignaturesInvalid"] == [1.0] or flushed["ProviderSignaturesInvalid"] == 1.0
    errors = [line for line in log.lines if line[0] == "error"]
    assert errors and errors[0][2] == {"invalid_signatures": result.invalid_signatures}


# --- the trust anchors' bundle ---------------------------------------------------------------------


def test_anchors_from_a_file_and_problems_said_not_raised(tmp_path):
    ca = Autorita.nuova("CA del file").certificato
    bundle = tmp_path / "anchors.pem"
    bundle.write_bytes(ca.public_bytes(Encoding.PEM))
    assert len(load_anchors(str(bundle))) == 1
    missing = load_anchors(str(tmp_path / "none.pem"))
    assert len(missing) == 0 and "no trust anchors at" in missing.problem
    bundle.write_bytes(b"not a certificate")
    broken = load_anchors(str(bundle))
    assert len(broken) == 0 and "could not be read" in broken.problem
    # the verdicts say why nothing is trusted
    check = check_message(parse(_busta(1)), broken)
    assert check.outcome == signature.UNTRUSTED and "could not be read" in check.reason
    assert load_anchors("").problem.startswith("no trust anchors configured")
    assert anchors_location("", "archivio") == "s3://archivio/trust/anchors.pem"
    assert anchors_location("/opt/anchors.pem", "archivio") == "/opt/anchors.pem"


@mock_aws
def test_anchors_in_s3_written_and_read_back():
    s3 = boto3.client("s3", region_name="eu-south-1")
    s3.create_bucket(Bucket="archivio", CreateBucketConfiguration={"LocationConstraint": "eu-south-1"})
    location = "s3://archivio/trust/anchors.pem"
    assert "no trust anchors at" in load_anchors(location, s3).problem
    ca = Autorita.nuova("CA su S3").certificato
    write_bundle(location, TrustAnchors([ca]), s3)
    anchors = load_anchors(location, s3)
    assert [c.subject for c in anchors.certificates] == [ca.subject] and not anchors.problem


def test_cli_trust_import_and_list(tmp_path, capsys):
    bundle = tmp_path / "anchors.pem"
    one, two = Autorita.nuova("CA uno").certificato, Autorita.nuova("CA due").certificato
    (tmp_path / "uno.pem").write_bytes(one.public_bytes(Encoding.PEM))
    (tmp_path / "due.der").write_bytes(two.public_bytes(Encoding.DER))
    assert cli.main(["trust", "import", str(tmp_path / "uno.pem"), "--bundle", str(bundle)]) == 0
    assert (
        cli.main(
            ["trust", "import", str(tmp_path / "due.der"), str(tmp_path / "uno.pem"), "--bundle", str(bundle)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "1 certificate(s) added, 1 in" in out and "1 certificate(s) added, 2 in" in out
    assert cli.main(["trust", "list", "--bundle", str(bundle)]) == 0
    listed = capsys.readouterr().out
    assert "CN=CA uno,O=pecflow,C=IT" in listed and "CN=CA due,O=pecflow,C=IT" in listed
    (tmp_path / "vuoto.xml").write_bytes(b"<elenco/>")
    assert cli.main(["trust", "import", str(tmp_path / "vuoto.xml"), "--bundle", str(bundle)]) == 1
    assert "no certificate found" in capsys.readouterr().err
    assert cli.main(["trust", "import", str(tmp_path / "uno.pem"), "--replace", "--bundle", str(bundle)]) == 0
    assert len(TrustAnchors.read(bundle.read_bytes())) == 1


@pytest.mark.parametrize("when", [datetime(2026, 3, 2, tzinfo=UTC)])
def test_a_message_with_no_times_is_judged_at_its_arrival(when):
    """No signingTime and no daticert (an opaque signature of ordinary content): the time of arrival."""
    from pecflow.pec import mime

    raw = _busta(1)
    check = signature.verify(mime.Part(raw), TrustAnchors(), received=when)
    assert check.signed_at_from == "received" and check.signed_at == when
