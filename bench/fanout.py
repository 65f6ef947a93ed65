"""Campaign fan-out: rows per second and peak memory at 1,000 and 100,000 rows.

The real fan-out (`pecflow.services.fanout.fan_out`: validate every row, then one DynamoDB job per row
and SQS batches of ten, checkpointed) runs against moto as a server with template.yaml's
tables, queues and bucket. moto runs in this process; each fan-out runs in a child process of
its own, so the child's peak resident memory (the kernel's VmHWM) is the fan-out's alone,
as a Lambda's would be. The campaign is what users upload: a Windows-1252, semicolon CSV with
merge fields, a fixed attachment and a per-recipient attachment column (the rows name 200
distinct files: uploading 100,000 objects to moto would measure moto, not us).
Target: peak memory at 100,000 rows within 20% of the peak at 1,000 rows.
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


def _status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak of this process image: unlike ru_maxrss, it
    does not include the parent's size inherited at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def csv_bytes(rows: int) -> bytes:
    """As Excel on Italian Windows writes it: cp1252, semicolons, CRLF, accented names."""
    out = io.StringIO()
    out.write("PEC;Ragione Sociale;Importo;Scadenza;Allegato\r\n")
    for i in range(rows):
        out.write(
            f'cliente{i:06d}@pec.clienti.test;"Società {i} S.r.l. – àèìòù";{1000 + i % 9000},50;'
            f"31/01/2027;avviso-{i % FILES:03d}.pdf\r\n"
        )
    return out.getvalue().encode("cp1252")


def upload(aws, campaign_id: str, rows: int) -> None:
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
    s3.put_object(Bucket=bucket, Key=prefix + "recipients.csv", Body=csv_bytes(rows))
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(MANIFEST).encode())


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


def measure(aws, rows: int) -> dict:
    campaign_id = f"bench-{rows}"
    queued_before = in_queue(aws)
    started = time.perf_counter()
    upload(aws, campaign_id, rows)
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
    if figures["status"] != "sending" or figures["queued"] != rows:
        sys.exit(f"fan-out of {rows} rows ended {figures['status']} with {figures['queued']} queued")
    figures.update(upload_seconds=uploaded, in_queue=in_queue(aws) - queued_before)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 3,000 rows (under 30 s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from local.aws import LocalAws

    small, large = (1_000, 3_000) if args.quick else (1_000, 100_000)
    aws = LocalAws.start(REPO / "template.yaml", stack_name="pecflow-bench", set_environ=False)
    try:
        results = {}
        for rows in (small, large):
            figures = results[rows] = measure(aws, rows)
            print(
                f"{rows:7d} rows: {rows / figures['seconds']:7.0f} rows/s ({figures['seconds']:.1f} s), "
                f"peak memory {figures['peak_mib']:.1f} MiB (before the fan-out {figures['before_mib']:.1f} MiB), "
                f"{figures['in_queue']} jobs in the send queue",
                flush=True,
            )
    finally:
        aws.stop()
    ratio = results[large]["peak_mib"] / results[small]["peak_mib"]
    print(
        f"fanout: {ratio:.2f} x the peak memory of {small:,} rows at {large:,} rows, "
        f"{large / results[large]['seconds']:.0f} rows/s (target <= 1.20 x)"
    )


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # moto's state of 100,000 jobs takes minutes to tear down object by object
