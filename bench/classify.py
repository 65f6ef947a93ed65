"""Throughput of pecflow.pec.message against the bare standard-library parse of the same bytes.

Corpus: a mixed mailbox from pecflow's own message builder, plus the real samples in
../shared/fixtures/pec when present, plus REM messages (ETSI EN 319 532-4): minimal ones made
here, laid out as AgID's examples are (originals from pecflow's message builder, evidence XML
with a signature block of realistic size), and AgID's own examples in ../shared/fixtures/rem
when present (labelled "real" in the report). The REM ratio is reported on its own line. The baseline is `email.message_from_bytes(raw)` (the
fastest stdlib policy, compat32): it only builds the MIME tree and extracts nothing.
pecflow's figure includes everything `pecflow classify` reports (kind, references, receipt
type, provider, parties, dates, daticert, postacert.eml and its attachments, SdI).
Rounds alternate baseline and pecflow and the best round of each is kept, so a noisy,
shared machine disturbs both alike. Last line: the ratio (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import gc
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "shared")]  # the builders (local/) and the core

from local.pecbuild import corpus as pecmix  # noqa: E402
from local.pecbuild.builder import ARUBA, Firma, messaggio_originale  # noqa: E402
from pecflow.pec import message  # noqa: E402
from pecflow.pec.signature import TrustAnchors, check_message  # noqa: E402

TARGET = 1.2


def corpus(size: int, extra: list[Path]) -> tuple[list[bytes], list[bytes]]:
    """(builder-made messages, real samples)"""
    real = [p.read_bytes() for folder in extra if folder.is_dir() for p in sorted(folder.glob("*.eml"))]
    return [c.raw for c in pecmix.corpus(size, seed=2026)], real


# (message type, event, reason, share): a sender's receipts dominate a REM mailbox, as with PEC
REM_MIX = (
    ("receipt", "SubmissionAcceptance", "MessageAccepted", 30),
    ("receipt", "ContentConsignment", "MessageConsignedToRecipient", 30),
    ("receipt", "RelayAcceptance", "S_ERDS_MessageSuccessfullyRelayed", 8),
    ("receipt", "ContentConsignmentFailure", "MessageNotConsignedForQuota", 4),
    ("receipt", "RelayFailure", "R_ERDS_Unreachable", 2),
    ("receipt", "SubmissionRejection", "MalwareFound", 1),
    ("receipt", "RelayToNonERDS", "MessageRelayedToNonERDS", 5),
    ("dispatch", "SubmissionAcceptance", "MessageAccepted", 15),
    ("dispatch", "ReceivedFromNonERDS", "MessageReceivedFromNonERDS", 5),
)
_REM_URI = "http://uri.etsi.org/19522/"


def _rem_evidence(
    rng: random.Random, event: str, reason: str, ua: str, recipients: list[str], n: int
) -> bytes:
    signature = base64.b64encode(rng.randbytes(9000)).decode("ascii")  # certificates and timestamp
    parties = "".join(
        f'<tns:RecipientDetails><Identifier IdentifierSchemeName="mailto">{r}</Identifier></tns:RecipientDetails>'
        for r in recipients
    )
    refers = "<EvidenceRefersToRecipient>1</EvidenceRefersToRecipient>" if event.startswith("Content") else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<tns:Evidence xmlns:tns="http://uri.etsi.org/19522/v1#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
 xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" version="EN319522v1.1.1">
<tns:EvidenceIdentifier>ev{n}.rem@rem.bench.test</tns:EvidenceIdentifier>
<tns:ERDSEventId>{_REM_URI}Event/{event}</tns:ERDSEventId>
<tns:EventReasons><tns:EventReason><Code>{_REM_URI}EventReason/{reason}</Code><Details>RA01</Details>
</tns:EventReason></tns:EventReasons><EventTime>2026-03-02T09:30:00Z</EventTime>
<tns:EvidenceIssuerPolicyID><PolicyID>http://uri.etsi.org/19532/v1#/REMbaseline</PolicyID></tns:EvidenceIssuerPolicyID>
<tns:EvidenceIssuerDetails><tns:Identity><saml:Attribute FriendlyName="LegalName"><saml:AttributeValue>Bench REM
</saml:AttributeValue></saml:Attribute></tns:Identity></tns:EvidenceIssuerDetails>
<tns:SenderDetails><Identifier IdentifierSchemeName="mailto">ufficio@rem.bench.test</Identifier></tns:SenderDetails>
{parties}{refers}<tns:MessageIdentifier>m{n}.rem@rem.bench.test</tns:MessageIdentifier>
<tns:UserContentInfo><AppLayerIdentifier>{ua.replace("<", "&lt;").replace(">", "&gt;")}</AppLayerIdentifier>
<tns:PartsInfo><tns:PartInfo><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
<ds:DigestValue>ZGlnZXN0</ds:DigestValue></tns:PartInfo></tns:PartsInfo></tns:UserContentInfo>
<ds:Signature><ds:SignatureValue>{signature}</ds:SignatureValue></ds:Signature></tns:Evidence>""".encode()


def rem_corpus(size: int, seed: int) -> list[bytes]:
    """`size` REM messages of REM_MIX, laid out as AgID's examples (PEC_FORMAT §10)."""
    rng = random.Random(seed)
    mix = [entry[:3] for entry in REM_MIX for _ in range(entry[3])]
    out = []
    for n in range(size):
        message_type, event, reason = rng.choice(mix)
        recipients = [f"dest{n}.{i}@rem{i}.bench.test" for i in range(rng.choice((1, 1, 2, 4)))]
        attachments = [
            ("fattura.pdf", "application/pdf", rng.randbytes(rng.choice((2_000, 30_000, 200_000))))
        ]
        original = messaggio_originale(
            mittente="ufficio@rem.bench.test",
            destinatari=recipients,
            oggetto=f"Comunicazione {n}",
            testo="Buongiorno,\nin allegato il documento.\n",
            allegati=attachments if message_type == "dispatch" else (),
            message_id=f"<c{n}.bench@rem.bench.test>",
        )
        ua = f"<c{n}.bench@rem.bench.test>"
        evidence = base64.encodebytes(_rem_evidence(rng, event, reason, ua, recipients, n)).decode("ascii")
        sections = [
            "REM-Section-Type: rem_message/introduction\nContent-Type: text/plain; charset=utf-8\n\n"
            f"Ricevuta di {event}\nIdentificativo messaggio: m{n}.rem@rem.bench.test\n"
        ]
        if message_type == "dispatch":
            sections.append(
                "Content-Type: message/rfc822; name=AttachedMimeMessage\n"
                "REM-Section-Type: rem_message/original\n\n" + original.decode("utf-8", "replace")
            )
        sections.append(
            f'Content-Type: application/xml; name="{event}.xml"\nContent-Transfer-Encoding: base64\n'
            f"REM-Section-Type: rem_message/xml_evidence\n\n{evidence}"
        )
        mixed = "Content-Type: multipart/mixed; boundary=mx\n\n" + "".join(f"--mx\n{p}\n" for p in sections)
        raw = (
            "From: <rem-service@rem.bench.test>\n"
            f"To: <ufficio@rem.bench.test>\nSubject: REM {event}: Comunicazione {n}\n"
            f"Date: Mon, 02 Mar 2026 10:30:00 +0100\nMessage-ID: <r{n}@rem.bench.test>\n"
            "REM-MetadataVersion: EN31953203V010201\n"
            "REM-ApplicablePolicy: http://uri.etsi.org/19532/v1#/REMbaseline\n"
            f"REM-MessageType: {_REM_URI}v1#/ERDMessageType/{message_type}\n"
            f"REM-UAMessageIdentifier: {ua}\nREM-EventIdentifier: {_REM_URI}Event/{event}\n"
            f"REM-Evidence-ID: <ev{n}.rem@rem.bench.test>\nREM-ReasonIdentifier: {_REM_URI}EventReason/{reason}\n"
            'MIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            "micalg=sha-256; boundary=sg\n\n"
            f"--sg\n{mixed}--mx--\n\n--sg\nContent-Type: application/pkcs7-signature; name=smime.p7s\n"
            "Content-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(rng.randbytes(3000)).decode("ascii")
            + "--sg--\n"
        )
        out.append(raw.encode("utf-8"))
    return out


def best_of(rounds: int, functions: dict[str, callable], raws: list[bytes]) -> dict[str, float]:
    best = {name: float("inf") for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            gc.collect()
            start = time.perf_counter()
            for raw in raws:
                fn(raw)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, few rounds (under 30 s)")
    parser.add_argument("--messages", type=int, help="messages from the builder (default 3000; quick 400)")
    parser.add_argument("--rounds", type=int, help="timed rounds per parser (default 5; quick 3)")
    parser.add_argument("--rem", type=int, help="REM messages made here (default: a fifth of --messages)")
    parser.add_argument(
        "--rem-samples",
        type=Path,
        default=REPO.parent / "shared" / "fixtures" / "rem",
        help="folder of real REM messages (AgID's examples), added when present",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        action="append",
        default=[REPO.parent / "shared" / "fixtures" / "pec"],
        help="extra folder of .eml files (repeatable)",
    )
    args = parser.parse_args()
    size = args.messages or (400 if args.quick else 3000)
    rounds = args.rounds or (3 if args.quick else 5)

    built, real = corpus(size, args.samples)
    rem_built = rem_corpus(args.rem if args.rem is not None else size // 5, seed=2026)
    rem_real = sorted(args.rem_samples.glob("*.eml")) if args.rem_samples.is_dir() else []
    rem_raws = rem_built + [p.read_bytes() for p in rem_real]
    raws = built + real + rem_raws
    total_mb = sum(map(len, raws)) / 1e6
    results = [message.parse(raw) for raw in raws]
    by_kind: dict[str, int] = {}
    for r in results:
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
    print(
        f"corpus: {len(raws)} messages, {total_mb:.1f} MB "
        f"({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items(), key=lambda kv: -kv[1]))})"
    )

    functions = {
        "stdlib compat32 (bare parse)": email.message_from_bytes,
        "pecflow.pec.message.parse": message.parse,
    }
    if not args.quick:
        functions["stdlib policy.default (bare parse)"] = lambda raw: email.message_from_bytes(
            raw, policy=email.policy.default
        )
    best = best_of(rounds, functions, raws)
    base = best["stdlib compat32 (bare parse)"]
    for name, seconds in best.items():
        print(
            f"{name:36s} {len(raws) / seconds:9.0f} msg/s {total_mb / seconds:8.1f} MB/s "
            f"{seconds / base:6.2f}x"
        )
    if rem_raws:
        rem_mb = sum(map(len, rem_raws)) / 1e6
        two = {k: functions[k] for k in list(functions)[:2]}
        rem_best = best_of(rounds * 4, two, rem_raws)
        rem_ratio = rem_best["pecflow.pec.message.parse"] / rem_best["stdlib compat32 (bare parse)"]
        print(
            f"REM messages only ({len(rem_built)} made here"
            + (f" + {len(rem_real)} real AgID examples" if rem_real else "")
            + f", {rem_mb:.1f} MB): {rem_ratio:.2f}x"
        )
    if real:
        # the real samples alone (small, few attachments): the least favourable mix for pecflow
        few = best_of(rounds * 20, {k: functions[k] for k in list(functions)[:2]}, real)
        print(
            f"real samples only ({len(real)} messages): "
            f"{few['pecflow.pec.message.parse'] / few['stdlib compat32 (bare parse)']:.2f}x"
        )
    # the provider's signature checked at ingestion too (the simulator's CA as the trust anchor)
    anchors = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
    check_seconds, outcomes = float("inf"), {}
    check_message(results[0], anchors)  # imports (asn1crypto) and the first certificate: once per process
    for _ in range(2 if args.quick else 3):
        start = time.perf_counter()
        checks = [check_message(r, anchors) for r in results]
        check_seconds = min(check_seconds, time.perf_counter() - start)
    for check in checks:
        outcomes[check.outcome] = outcomes.get(check.outcome, 0) + 1
    classify_seconds = best["pecflow.pec.message.parse"]
    print(
        f"signature check: {check_seconds / len(raws) * 1000:.2f} ms/message, "
        f"{check_seconds / classify_seconds:.2f} x classify ({', '.join(f'{k} {n}' for k, n in sorted(outcomes.items()))})"
    )
    ratio = classify_seconds / base
    print(f"classify: {ratio:.2f} x bare compat32 parse (target <= {TARGET})")


if __name__ == "__main__":
    main()
