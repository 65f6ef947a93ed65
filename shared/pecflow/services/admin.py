"""Administration of a pecflow installation: mailboxes (what `pecflow mailbox ...` runs)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from pecflow.adapters.dynamodb import MailboxStore
from pecflow.adapters.mail import ImapSession, MailboxUnavailable
from pecflow.adapters.secrets import secret_value
from pecflow.deployment import Deployment
from pecflow.domain import clock
from pecflow.domain.mailbox import MailboxConfig, secret_name


def store_password(deployment: Deployment, address: str, password: str) -> str:
    """Create or update the mailbox's secret; returns its name. The password goes nowhere else."""
    secrets = deployment.client("secretsmanager")
    name = secret_name(deployment.stack_name, address)
    try:
        secrets.create_secret(
            Name=name,
            SecretString=secret_value(password),
            Description=f"pecflow: password of the PEC mailbox {address}",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise
        secrets.put_secret_value(SecretId=name, SecretString=secret_value(password))
    return name


def check_login(config: MailboxConfig, password: str) -> str:
    """Log in once over IMAP; returns a one-line summary, raises MailboxUnavailable."""
    session = ImapSession.open(config, password, timeout=20)
    try:
        status = session.select(config.folders[0])
        usage = session.usage(config.folders[0])
    finally:
        session.close()
    quota = f", {usage.percent:.0f}% of the quota used" if usage and usage.percent is not None else ""
    return f"{status.exists} message(s) in {config.folders[0]}{quota}"


def add_mailbox(deployment: Deployment, config: MailboxConfig, password: str, *, check: bool = True) -> str:
    config.validate()
    summary = check_login(config, password) if check else "login not checked"
    name = store_password(deployment, config.address, password)
    config = MailboxConfig(
        **{**{f: getattr(config, f) for f in config.__dataclass_fields__}, "secret_id": name}
    )
    MailboxStore(deployment.mailboxes_table, deployment.resource("dynamodb")).put(config)
    return summary


def list_mailboxes(deployment: Deployment) -> list[tuple[MailboxConfig, dict]]:
    store = MailboxStore(deployment.mailboxes_table, deployment.resource("dynamodb"))
    return [(config, store.status(config.address)) for config in store.list()]


def set_enabled(deployment: Deployment, address: str, enabled: bool) -> None:
    MailboxStore(deployment.mailboxes_table, deployment.resource("dynamodb")).set_enabled(address, enabled)


__all__ = [
    "MailboxUnavailable",
    "add_mailbox",
    "check_login",
    "list_mailboxes",
    "set_enabled",
    "store_password",
]


# --- campaigns -----------------------------------------------------------------------------------
STAT_LABELS = (
    ("total", "Totale"),
    ("waiting", "In attesa di conferma"),
    ("to_send", "Da spedire"),
    ("sent", "Spedite"),
    ("only_sent", "Solo spedite (nessuna ricevuta)"),
    ("accepted", "Accettate"),
    ("delivered", "Accettate e consegnate"),
    ("delivery_failures", "Errori di consegna"),
    ("errors", "Errori (non accettate, rifiutate, non valide)"),
    ("warnings", "Con preavviso di mancata consegna"),
    ("cancelled", "Annullate"),
)
RESENDABLE = ("delivery-failed", "error", "not-accepted")


def _campaign_stores(deployment: Deployment):
    from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore

    ddb = deployment.resource("dynamodb")
    return (
        CampaignStore(deployment.campaigns_table, ddb),
        OutgoingStore(deployment.outgoing_table, ddb, campaigns_table=deployment.campaigns_table),
    )


def campaign_stats(deployment: Deployment, campaign_id: str) -> dict:
    campaigns, _ = _campaign_stores(deployment)
    item = campaigns.get(campaign_id)
    if item is None:
        raise KeyError(f"no campaign {campaign_id}")
    counters = campaigns.counters(campaign_id)
    status = item.get("status")
    if (
        status == "sending"
        and counters.get("total")
        and not counters.get("to_send")
        and not counters.get("waiting")
    ):
        status = "completed"  # derived: every job has its outcome (a resend makes it sending again)
    return {
        "campaign_id": campaign_id,
        "status": status,
        "mailbox": item.get("mailbox"),
        "counters": counters,
        "validation": item.get("validation"),
        "queued": item.get("fanout_queued", 0),
        "fanout_error": item.get("fanout_error"),
        "problems": item.get("problems", []),
        "invalid_reason": item.get("invalid_reason"),
        "dead_lettered": item.get("dead_lettered", 0),
    }


def campaign_jobs(deployment: Deployment, campaign_id: str):
    _, outgoing = _campaign_stores(deployment)
    return outgoing.campaign_jobs(campaign_id)


def set_campaign_status(deployment: Deployment, campaign_id: str, action: str) -> str:
    """pause | resume | cancel. Returns the new status."""
    from pecflow.adapters.dynamodb import CampaignStatus

    campaigns, _ = _campaign_stores(deployment)
    transitions = {
        "pause": (CampaignStatus.PAUSED, (CampaignStatus.SENDING, CampaignStatus.QUEUING)),
        "resume": (CampaignStatus.SENDING, (CampaignStatus.PAUSED,)),
        "cancel": (
            CampaignStatus.CANCELLED,
            (CampaignStatus.SENDING, CampaignStatus.QUEUING, CampaignStatus.PAUSED),
        ),
    }
    target, allowed = transitions[action]
    if campaigns.get(campaign_id) is None:
        raise KeyError(f"no campaign {campaign_id}")
    if not campaigns.update(campaign_id, {"status": target}, only_if_status=allowed):
        current = campaigns.get(campaign_id)["status"]
        raise ValueError(f"campaign {campaign_id} is {current}: cannot {action} it")
    if action in ("resume", "cancel"):
        # paused jobs left the queue: every job still to send goes back on it, to be sent (resume) or
        # marked cancelled (cancel). After the status changed: a sender that saw the pause before
        # this point parked a job this finds pending.
        _requeue(
            deployment,
            [job for job in campaign_jobs(deployment, campaign_id) if job["state"] == "pending"],
            why=f"{action} {clock.iso()}",
        )
    return target


def _requeue(deployment: Deployment, jobs: list[dict], *, why: str | None) -> int:
    """Put jobs on the send queue; `why` names a deliberate re-queue (a new deduplication id: a
    job already there is safe, a sender handles a job once)."""
    from pecflow.services.fanout import BATCH, queue_entry

    sqs = deployment.client("sqs")
    for start in range(0, len(jobs), BATCH):
        entries = [
            queue_entry(job["message_id"], i, again=why) for i, job in enumerate(jobs[start : start + BATCH])
        ]
        failed = sqs.send_message_batch(QueueUrl=deployment.send_queue_url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"jobs not queued again: {failed}")
    return len(jobs)


def redrive(deployment: Deployment, campaign_id: str) -> dict[str, int]:
    """Send again what stopped without being sent: the jobs the dead-letter queue turned into
    errors (back to `pending`), and every pending job, which may have no queue message left.
    Safe to repeat: a job is sent at most once whatever is queued."""
    from pecflow.adapters.dynamodb import CampaignStatus
    from pecflow.domain.reconcile import REDRIVE, Job, State

    campaigns, outgoing = _campaign_stores(deployment)
    item = campaigns.get(campaign_id)
    if item is None:
        raise KeyError(f"no campaign {campaign_id}")
    if item["status"] in (
        CampaignStatus.CANCELLED,
        CampaignStatus.INVALID,
        CampaignStatus.VALIDATED,
        CampaignStatus.VALIDATING,
    ):
        raise ValueError(f"campaign {campaign_id} is {item['status']}: nothing to redrive")
    redriven, pending = 0, []
    for job in outgoing.campaign_jobs(campaign_id):
        state = State(job["state"])
        if state == State.ERROR and job.get("dead_letter"):
            recipient = Job(job["recipient"], state, bool(job.get("certified", True)), campaign_id)
            if outgoing.try_move(
                job["message_id"],
                recipient,
                REDRIVE,
                only_if={"dead_letter": job["dead_letter"]},
                also_set={"redriven_at": clock.iso()},
                also_remove=("dead_letter", "error", "last_failure"),
            ):
                redriven += 1
                outgoing.count_in_campaign(campaign_id, "dead_lettered", -1)
                pending.append(job)
        elif state == State.PENDING:
            pending.append(job)
    queued = 0
    if item["status"] != CampaignStatus.PAUSED:  # a paused campaign's jobs are queued on resume
        queued = _requeue(deployment, pending, why=f"redrive {clock.iso()}")
    return {"redriven": redriven, "queued": queued}


def resend_failed(deployment: Deployment, campaign_id: str) -> int:
    """A new attempt for every recipient whose latest attempt failed (delivery failure, error,
    non accettazione): new jobs with new Message-IDs, counted and queued. Safe to repeat."""
    from pecflow.adapters.dynamodb import CampaignStatus
    from pecflow.services.fanout import BATCH
    from pecflow.services.sending import message_id_for

    campaigns, outgoing = _campaign_stores(deployment)
    item = campaigns.get(campaign_id)
    if item is None:
        raise KeyError(f"no campaign {campaign_id}")
    if item["status"] in (CampaignStatus.CANCELLED, CampaignStatus.INVALID, CampaignStatus.VALIDATED):
        raise ValueError(f"campaign {campaign_id} is {item['status']}: nothing to resend")
    latest: dict[int, dict] = {}
    for job in outgoing.campaign_jobs(campaign_id):
        if job["row"] not in latest or job["attempt"] > latest[job["row"]]["attempt"]:
            latest[job["row"]] = job
    retry = [job for job in latest.values() if job["state"] in RESENDABLE]
    created = 0
    for start in range(0, len(retry), BATCH):
        batch = [
            {
                "message_id": message_id_for(campaign_id, job["row"], job["attempt"] + 1, job["mailbox"]),
                "recipient": job["recipient"],
                "mailbox": job["mailbox"],
                "campaign_id": campaign_id,
                "row": job["row"],
                "attempt": job["attempt"] + 1,
                "values": job.get("values"),
            }
            for job in retry[start : start + BATCH]
        ]
        new = outgoing.add_jobs(batch)
        if new:
            campaigns.add_jobs(campaign_id, new)
        _requeue(deployment, batch, why=None)
        created += new
    if created and item["status"] != CampaignStatus.SENDING:
        campaigns.update(campaign_id, {"status": CampaignStatus.SENDING})
    return created
