"""Campaign fan-out: rows per second and peak memory at 1,000 and 100,000 rows, one PEC per row
and grouped (group_by: one PEC per customer from three invoice rows each, the CSV not sorted).

The real fan-out (`pecflow.services.fanout.fan_out`: validate every row, then one DynamoDB job per row
and SQS batches of ten, checkpointed) runs against moto as a server with template.yaml's
tables, queues and bucket. moto runs in this process; each fan-out runs in a child process of
its own, so the child's peak resident memory (the kernel's VmHWM) is the fan-out's alone,
as a Lambda's would be. The campaign is what users upload: a Windows-1252, semicolon CSV with
merge fields, a fixed attachment and a per-recipient attachment column (the rows name 200
distinct files: uploading 100,000 objects to moto would measure moto, not us).
The grouped campaign spills its rows to a scratch database on disk and sorts them there
(pecflow.domain.campaign.grouping), in the child's temporary folder.
Target: peak memory at 100,000 rows within 20% of the peak at 1,000 rows, for both.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time

from _env import REPO  # first: the paths and fake AWS credentials

FILES = 200
MANIFEST = {
    "mailbox": "ufficio@pec.azienda.test",
    "subject": "Avviso di scadenza – {{ ragione_sociale }}",
    "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo l'importo di {{ importo|importo }} "
    "in scadenza il {{ scadenza|data }}.\nCordiali saluti\n",
    "attachments": ["condizioni-generali.pdf"],
    "attachment_column": "allegato",
    "receipt_type": "completa",
}


GROUPED = {
    **MANIFEST,
    "subject": "Fatture scadute – {{ ragione_sociale }}",
    "body_text": "Gentile {{ ragione_sociale }},\nrisultano scadute:\n"
    "{% for r in righe %}- n. {{ r.numero }}: {{ r.importo|importo }}, scaduta il {{ r.scadenza|data }}\n{% endfor %}"
    "Totale: {{ righe|sum(attribute='importo')|importo }}\n",
    "group_by": "PEC",
}
PER_CUSTOMER = 3


def _status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak of this process image: unlike ru_maxrss, it
    does not include the parent's size inherited at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def customers(rows: int) -> int:
    return -(-rows // PER_CUSTOMER)


def csv_bytes(rows: int, grouped: bool = False) -> bytes:
    """As Excel on Italian Windows writes it: cp1252, semicolons, CRLF, accented names. Grouped:
    one row per invoice, three per customer, the customers' rows scattered through the file."""
    out = io.StringIO()
    out.write("PEC;Ragione Sociale;Numero;Importo;Scadenza;Allegato\r\n")
    groups = customers(rows)
    for i in range(rows):
        c = (i * 7919) % groups if grouped and groups % 7919 else i  # 7919: prime, every customer thrice
        out.write(
            f'cliente{c:06d}@pec.clienti.test;"Società {c} S.r.l. – àèìòù";{i}/2026;{1000 + i % 9000},50;'
            f"31/01/2027;avviso-{i % FILES:03d}.pdf\r\n"
        )
    return out.getvalue().encode("cp1252")


def upload(aws, campaign_id: str, rows: int, grouped: bool = False) -> None:
    s3 = aws.client("s3")
    bucket = aws.physical("CampaignBucket")
    prefix = f"campaigns/{campaign_id}/"
    s3.put_object(
        Bucket=bucket,
        Key=prefix + "attachments/condizioni-generali.pdf",
        Body=b"%PDF-1.4 condizioni generali\n%%EOF\n",
    )
    for i in range(FILES):
        s3.put_object(
            Bucket=bucket,
            Key=f"{prefix}attachments/avviso-{i:03d}.pdf",
            Body=f"%PDF-1.4 avviso {i}\n%%EOF\n".encode(),
        )
    s3.put_object(Bucket=bucket, Key=prefix + "recipients.csv", Body=csv_bytes(rows, grouped))
    manifest = GROUPED if grouped else MANIFEST
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())


def child(args) -> None:
    """One fan-out, measured from inside its own process; prints one JSON line."""
    import boto3

    from pecflow.adapters.campaign_files import CampaignPackage
    from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
    from pecflow.services.fanout import fan_out

    env = json.loads(args.child)
    s3 = boto3.client("s3", endpoint_url=env["endpoint"])
    sqs = boto3.client("sqs", endpoint_url=env["endpoint"])
    dynamodb = boto3.resource("dynamodb", endpoint_url=env["endpoint"])
    campaigns = CampaignStore(env["campaigns_table"], dynamodb)
    outgoing = OutgoingStore(env["outgoing_table"], dynamodb, campaigns_table=env["campaigns_table"])
    package = CampaignPackage(s3, env["bucket"], env["campaign_id"])
    package.read("manifest.json")  # connections and parsers warm, as in a warm Lambda
    before = _status_mib("VmRSS")
    started = time.perf_counter()
    result = fan_out(
        env["campaign_id"],
        package=package,
        campaigns=campaigns,
        outgoing=outgoing,
        send_batch=lambda entries: sqs.send_message_batch(QueueUrl=env["queue_url"], Entries=entries),
    )
    elapsed = time.perf_counter() - started
    peak = _status_mib("VmHWM")
    print(
        json.dumps(
            {
                "status": result.status,
                "rows": result.rows,
                "queued": result.queued,
                "seconds": elapsed,
                "peak_mib": peak,
                "before_mib": before,
            }
        )
    )


def in_queue(aws) -> int:
    return int(
        aws.client("sqs").get_queue_attributes(
            QueueUrl=aws.url("SendQueue"),
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
    )


def measure(aws, rows: int, grouped: bool = False) -> dict:
    campaign_id = f"bench-{'grouped-' if grouped else ''}{rows}"
    queued_before = in_queue(aws)
    started = time.perf_counter()
    upload(aws, campaign_id, rows, grouped)
    uploaded = time.perf_counter() - started
    env = {
        "endpoint": aws.endpoint_url,
        "bucket": aws.physical("CampaignBucket"),
        "campaign_id": campaign_id,
        "campaigns_table": aws.physical("CampaignsTable"),
        "outgoing_table": aws.physical("OutgoingTable"),
        "queue_url": aws.url("SendQueue"),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(env)],
        capture_output=True,
        text=True,
        env={**os.environ, "POWERTOOLS_SERVICE_NAME": "bench"},
    )
    if done.returncode != 0:
        sys.exit(f"fan-out of {rows} rows failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    messages = customers(rows) if grouped else rows
    if figures["status"] != "sending" or figures["queued"] != messages or figures["rows"] != rows:
        sys.exit(
            f"fan-out of {rows} rows ended {figures['status']} with {figures['queued']} queued "
            f"(expected {messages:,}) covering {figures['rows']} rows"
        )
    figures.update(upload_seconds=uploaded, in_queue=in_queue(aws) - queued_before)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="200 and 600 rows (under 30 s on an idle machine)"
    )
    parser.add_argument("--only", choices=("rows", "grouped"), help="measure one kind of campaign only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from local.aws import LocalAws

    small, large = (200, 600) if args.quick else (1_000, 100_000)
    aws = LocalAws.start(REPO / "template.yaml", stack_name="pecflow-bench", set_environ=False)
    kinds = [k for k in (False, True) if args.only is None or args.only == ("grouped" if k else "rows")]
    ratios: dict[bool, float] = {}
    try:
        for grouped in kinds:
            results = {}
            for rows in (small, large):
                figures = results[rows] = measure(aws, rows, grouped)
                what = f"grouped, {figures['queued']:,} PEC" if grouped else "one PEC each"
                print(
                    f"{rows:7d} rows ({what}): {rows / figures['seconds']:7.0f} rows/s ({figures['seconds']:.1f} s), "
                    f"peak memory {figures['peak_mib']:.1f} MiB (before the fan-out {figures['before_mib']:.1f} MiB), "
                    f"{figures['in_queue']} jobs in the send queue",
                    flush=True,
                )
            ratios[grouped] = results[large]["peak_mib"] / results[small]["peak_mib"]
            if len(kinds) > 1 and grouped:
                print(f"grouped: {ratios[grouped]:.2f} x the peak memory of {small:,} rows at {large:,} rows")
            elif len(kinds) > 1:
                print(
                    f"one PEC per row: {ratios[grouped]:.2f} x the peak memory of {small:,} rows at {large:,} rows"
                )
    finally:
        aws.stop()
    worst = max(ratios.values())
    shown = ", ".join(f"{'grouped' if g else 'per row'} {r:.2f} x" for g, r in ratios.items())
    print(
        f"fanout: {worst:.2f} x the peak memory of {small:,} rows at {large:,} rows ({shown}) (target <= 1.20 x)"
    )


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # moto's state of 100,000 jobs takes minutes to tear down object by object
