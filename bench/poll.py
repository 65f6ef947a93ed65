"""Cost of a poll with nothing new: a 10-message mailbox against a 10,000-message one.

A real IMAP server (Dovecot, started here) and the real ingestor (DynamoDB in moto,
in-process, with template.yaml's tables). Each mailbox is filled, its cursor brought up to
date, then polled repeatedly: every poll logs in over TLS, selects, finds nothing new and
logs out, through the poller's own path (registry, cursor and status in DynamoDB; the quota
is read when messages arrive and at most hourly otherwise). Reported: IMAP round trips (tagged
commands) and wall time per poll (median).
Target: the same round trips whatever the size, and time within 2x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _env import REPO  # first: the paths and fake AWS credentials

os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from local.aws import LocalAws  # noqa: E402
from local.imap import Dovecot  # noqa: E402
from local.pecbuild import corpus as pecmix  # noqa: E402
from pecflow.adapters.archive import Archive  # noqa: E402
from pecflow.adapters.dynamodb import MailboxStore, MessageStore, OutgoingStore  # noqa: E402
from pecflow.adapters.mail import ImapSession  # noqa: E402
from pecflow.domain.mailbox import Cursor, MailboxConfig  # noqa: E402
from pecflow.services.polling import PollRequest, handle_poll  # noqa: E402
from pecflow.services.receive import Ingestor  # noqa: E402


def fill(dovecot: Dovecot, address: str, count: int, samples: list[bytes]) -> None:
    client = dovecot.connect_as_master(address)
    try:
        for start in range(0, count, 200):
            batch = [samples[i % len(samples)] for i in range(start, min(count, start + 200))]
            client.multiappend("INBOX", batch)
    finally:
        client.logout()


def measure(ingestor, mailboxes, config, password, polls: int) -> tuple[list[int], list[float]]:
    """Polls through the poller's own path (handle_poll): registry read, IMAP, cursor, status."""
    commands, seconds = [], []
    for n in range(polls):
        sessions: list = []

        def open_session(cfg, pw, sessions=sessions):
            sessions.append(ImapSession.open(cfg, pw))
            return sessions[-1]

        started = time.perf_counter()
        outcome = handle_poll(
            PollRequest(config.address, f"tick-{n}"),
            mailboxes=mailboxes,
            ingestor=ingestor,
            password_of=lambda _, refresh=False: password,
            open_session=open_session,
        )
        seconds.append(time.perf_counter() - started)
        commands.append(sessions[0].commands + 1)  # + LOGOUT
        assert outcome.ok and outcome.result.fetched == 0, "the cursor was up to date: nothing is new"
    return commands, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 10,000 (under 30 s)")
    parser.add_argument("--large", type=int, help="messages in the large mailbox")
    parser.add_argument("--polls", type=int, help="polls measured per mailbox (default 30; quick 15)")
    args = parser.parse_args()
    large = args.large or (1_000 if args.quick else 10_000)
    polls = args.polls or (15 if args.quick else 30)
    samples = [c.raw for c in pecmix.corpus(200, seed=1, sdi=False)]

    with Dovecot() as dovecot, mock_aws():
        aws = LocalAws.in_process(REPO / "template.yaml", stack_name="bench")
        ddb = aws.resource("dynamodb")
        mailboxes = MailboxStore(aws.physical("MailboxesTable"), ddb)
        ingestor = Ingestor(
            Archive(aws.physical("ArchiveBucket"), aws.client("s3")),
            MessageStore(aws.physical("MessagesTable"), ddb),
            mailboxes,
            OutgoingStore(aws.physical("OutgoingTable"), ddb),
        )
        sizes = {"small": 10, "large": large}
        figures = {}
        for label, count in sizes.items():
            account = dovecot.fresh_user(label, quota="10G")
            started = time.perf_counter()
            fill(dovecot, account.address, count, samples)
            config = MailboxConfig(
                account.address, dovecot.host, dovecot.port, ca_bundle=dovecot.ca.pem.decode()
            )
            session = ImapSession.open(config, account.password)
            status = session.select("INBOX")
            session.close()
            assert status.exists == count, f"{label}: {status.exists} messages, expected {count}"
            # everything up to UIDNEXT is already recorded: the next polls find nothing new
            mailboxes.save_cursor(
                account.address,
                Cursor("INBOX", status.uidvalidity, status.uidnext - 1, status.uidnext, status.highestmodseq),
            )
            print(f"{label}: {count} messages in INBOX (filled in {time.perf_counter() - started:.1f} s)")
            mailboxes.put(config)
            measure(ingestor, mailboxes, config, account.password, 3)  # warm up (reads the quota once)
            figures[label] = measure(ingestor, mailboxes, config, account.password, polls)

    for label, (commands, seconds) in figures.items():
        print(
            f"{label:6s} {sizes[label]:6d} messages: {sorted(set(commands))} IMAP round trips per poll, "
            f"median {statistics.median(seconds) * 1000:.1f} ms, best {min(seconds) * 1000:.1f} ms"
        )
    small_cmds, large_cmds = set(figures["small"][0]), set(figures["large"][0])
    ratio = statistics.median(figures["large"][1]) / statistics.median(figures["small"][1])
    same = "same" if small_cmds == large_cmds else "DIFFERENT"
    print(
        f"poll: {ratio:.2f} x the time of the 10-message poll at {large} messages, {same} round trips "
        f"({'/'.join(map(str, sorted(small_cmds)))} vs {'/'.join(map(str, sorted(large_cmds)))}) "
        f"(target <= 2 x, same round trips)"
    )


if __name__ == "__main__":
    main()
