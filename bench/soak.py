"""Soak: N certified messages received across four mailboxes and an N-recipient campaign at the
same time, with three people working the inbox through the HTTP API meanwhile, on the local
stack (Dovecot, the simulated providers, moto, the event runner driving the real handlers from
template.yaml, on a virtual clock: the provider's 250 per 20 minutes takes no real days).

Each round is one poll interval (5 virtual minutes): a share of the incoming messages is
submitted over SMTPS to the correspondents' provider (which delivers them into Dovecot) while
the people, through the API on its local port with tokens of local/tokens.py, list the inbox,
open a message, take it in charge, reply to or forward it, mark it handled, and an admin moves
some to the bin; then the runner advances the clock (pollers, fan-out, senders, receipts). The
people never act while the clock jumps: a request would last minutes of virtual time, past the
API's 29 s time-out. One mailbox expunges what it has archived (saturation above 0.1% of a
20 MB quota: 20 kB), so the check that nothing leaves the provider unarchived has something to
check.

At the end, the invariants: every delivered message archived in S3 byte-identical (against
Dovecot's copy; an expunged one against its SHA-256 key) and recorded once; every campaign
recipient got exactly one message; every job (campaign, replies, forwards) delivered with its
accettazione and avvenuta-consegna reconciled; the campaign's statistics equal the jobs and the
simulator's deliveries; nothing expunged unarchived; each mailbox's audit chain verifies and holds
every action the people did. Then the figures: messages per second each way (wall time of the
whole run) and the process's CPU per message; peak memory per handler (tracemalloc, growth
during one invocation, in the last two rounds with the runner one invocation at a time; the
rest of the run untraced and concurrent; the fan-out runs in the first round: its peak is
bench/fanout.py's); AWS requests per message (bench/cost.py's Meter: DynamoDB requests with
WRU/GSI WRU/RRU, S3, SQS) per function; the full run's duration extrapolated. --profile: where
this process's CPU goes (every thread sampled every 2 ms: its CPU clock, charged to the function
it is in when it ran most of the interval): by thread, by area on the stack (handlers, pecflow,
moto, botocore, the simulator, ...), top functions. (cProfile cannot: on 3.12 it is one
profiler for the whole process, and the threads' stacks mix.)

Measured on 2026-11-26, on 2 cores shared with other engineers' suites (load average 15 to 21;
this process got 20 to 35% of one core), every invariant holding in every run:

  -n 10000 (2026-11-27, 77578a4: moto's SQS kept linear, local/moto_sqs.py; jobs beyond the
    quota's horizon asleep until their own slot; the other core mostly idle, the suite niced on
    it for 14 minutes): 4594 s, 4.35 msg/s both ways together (2.18 each), 0.21 CPU s per message
    (4208 s of CPU, 92% of one core); 900 API actions (1150 requests); 2626 messages expunged
    after archiving; every invariant held (153 s to check). Per message: 11.7 DynamoDB requests
    (14.9 WRU + 4.3 GSI WRU, 3.7 RRU), 2.3 S3, 2.8 SQS. Peak growth in one invocation (last two
    rounds traced): API 5.1 MiB, poller 8.3, scheduler 24.6 (2 samples: its first alert
    published in them, imports included), sender 0.6. 26,450 sender invocations for 10,000
    jobs; the fan-out took 38 s of CPU. Round 1 (the fan-out, every job touched once: 250 sent,
    the next six hours reserved, the rest refused once) 669 s; then about 10 s a round without
    a quota window and 70 s with one (250 sends and their receipts). 20,000 + 20,000 at this
    rate: about 2.6 h.
  -n 20000 (2026-11-27, 9591208, the final code; the clean-clone suite niced beside it for its first
    15 minutes, the machine otherwise idle; log kept in /work/soak20000-final.log on the machine
    that ran it): 9229 s (2.56 h, 322 rounds), 4.33 msg/s both ways together (2.17 each), 0.21 CPU
    s per message (8261 s of CPU, 90% of one core); 1800 API actions (2300 requests); 5228 messages
    expunged after archiving; every invariant held (389 s to check). Per message: 12.68 DynamoDB
    requests (14.62 WRU + 4.32 GSI WRU, 4.75 RRU), 2.30 S3, 4.25 SQS: more than at 10,000 (11.7
    DynamoDB, 3.7 RRU, 2.8 SQS), as a longer campaign's waiting jobs wake more often (3.8 sender
    invocations a job, 2.6 at 10,000). Peak growth in one invocation (last two rounds traced): API
    not sampled (no API action in those rounds), poller 23.4 MiB (8.3 at 10,000), scheduler 0.1
    MiB, sender 1.0 MiB. 75,446 sender invocations for 20,000 jobs; the fan-out took 84 s of CPU.
    Round 1 1067 s (beside the suite), then 104 s a quota window from round 8 to 88 and 102 s in
    the last 80 rounds. Round 143 stood still 289 s: the 7,000 jobs whose slots lay past SQS's 12
    hours all woke at 11 h 55 min of virtual time, the longest wait the sender asks, each refused
    once more (here one at a time; bench/quota.py at 20,000, five senders, finds no slot delayed by
    it, and spreading them by each job's offset cost 27 % more refusals: 22,132 -> 28,083, the
    line's order lost).
  -n 20000 (2026-11-27, ae66c42, the same pecflow code, started 12:48): ended at round 175 of
    320 (5583 s, 11,200 messages submitted, 10,915 of the campaign delivered) when the session that
    started it ended, which stops every process it started. Round 1 998 s, then 86 s a quota window
    alone on the machine, rising slowly (101 s from round 115 to 139, 105 s by round 175; the
    process held 4.5 GB, moto's S3 in memory). Round 143 stood still for 382 s, just after a dozen
    `kill -USR1` samples, but the samples were not the cause: the final run stood still at the same
    round (above). For its first 19 minutes it ran beside a second 2538ad9 run (stopped then, at
    round 28): a window took 95 s against that run's 196 s, under the same load. Round 1 took 998 s
    beside it, where 2538ad9's took 1409 s alone and 1730 s beside the suite.
  -n 20000 (2026-11-27, 2538ad9, the machine otherwise idle): round 1 1409 s, then about 17 s a
    round without a quota window and 100 s with one: 150 s a window, against 98 s at -n 10000, so
    about 3.7 h in all. It died at round 13: a segfault in the interpreter while faulthandler
    dumped every thread's stack, the 12th dump in a minute, mid-collection (USR1 runs a Python
    handler since). Those stacks and micro-benchmarks at 20,000 found what still grew with the
    queue and the tables, each about linear per call, all in the local stack (ae66c42 fixed each):
      - the runner asked "is a message ready?" by a pass over the send queue at every pump (2.6
        ms with 20,000 jobs asleep), and "when is the next one ready?" by another (14 ms);
      - moto's receive, patched linear, still passed over the queue and counted the groups of
        every message in flight (15 ms with nothing ready); a delete rebuilt the queue's list;
      - moto answered a Query on an index by sorting the whole table, then testing each item
        (59 ms at 20,000 items: once for every receipt reconciled, by ByIdentificativo).
    Since: each queue is indexed by the time its messages become ready (a heap), with its
    receipt handles and in-flight groups (a receive with nothing ready 15 ms -> 1.1 ms, the HTTP
    round trip itself 1.0 ms; the runner's two questions 2.6 and 14 ms -> under 0.01 ms, once
    their stale entries are dropped); an index query tests the index's key first and sorts what
    it keeps (59 -> 27 ms).
  -n 20000 (2026-11-27, d28d559, moto's SQS patched): round 1 1484 s, round 2 425 s, then the
    process died when gdb attached to read its stacks (`kill -USR1` prints them now). Round 2
    was pecflow's own cost: a job refused beyond the 6-hour horizon came back within half an
    hour of the reservations' end and nearly all were refused again, so some 15,000 jobs woke
    every half hour (fixed in 77578a4: bench/quota.py's refusals 56,272 -> 5,632 at 10,000).
  -n 20000 (2026-11-27, 05cd463, the other core running the suite and benches): stopped after 5
    rounds and 4,750 s (320 of 20,000 submitted, the campaign 500 of 20,000 delivered): a round
    took 500 to 660 s, against 24 s at -n 5000. Two causes: moto's SQS (a FIFO receive copied the
    in-flight groups at each call, every setting read counted the whole queue, the clock was read
    for every message: quadratic in the jobs asleep on the queue; local/moto_sqs.py since), and
    the wakes beyond the horizon above.
  -n 5000 (2026-11-27, d0a72bc: ByHandling, ByDate and ByLocation gone, new rows at the batch's
    settle; the other core running the suite niced): 2190 s, 4.57 msg/s both ways together (2.28
    each), 0.20 CPU s per message (1985 s of CPU, 91% of one core); 450 API actions (575
    requests); 1314 messages expunged after archiving; every invariant held (71 s to check). Per
    message: 11.4 DynamoDB requests (15.4 WRU + 4.3 GSI WRU, 3.2 RRU), 2.3 S3, 2.2 SQS. Peak
    growth in one invocation (last two rounds traced): API 2.6 MiB, poller 3.9, sender 1.0,
    scheduler 0.2; the fan-out of 5,000 rows took 19 s of CPU.
  -n 5000 (2026-11-27, b880101, the machine otherwise idle): 1917 s, 5.22 msg/s both ways
    together (2.61 each), 0.18 CPU s per message (1770 s of CPU, 92% of one core); 450 API
    actions (575 requests); 1314 messages expunged after archiving; every invariant held (68 s
    to check). Per message: 12.8 DynamoDB requests (15.4 WRU + 8.1 GSI WRU, 3.2 RRU), 2.3 S3.
    Peak growth in one invocation (last two rounds traced): API 2.6 MiB, poller 4.0, sender 1.0,
    scheduler 0.1; the fan-out of 5,000 rows took 47 s of CPU. moto's SQS once failed a receive
    from its own threads ("Set changed size during iteration" in pending_message_groups, a FIFO
    queue read while another thread changed it): the runner received again, nothing was lost.
    At this rate 20,000 + 20,000 would take about 2.1 h.
  -n 2000 (2026-11-27, 443e92d, the machine otherwise idle): 832 s, 4.81 msg/s both ways
    together (2.40 each), 0.19 CPU s per message (775 s of CPU, 93% of one core); 176 API actions
    (225 requests); 524 messages expunged after archiving; every invariant held (26 s to check).
    Per message: 12.6 DynamoDB requests (15.2 WRU + 8.1 GSI WRU, 3.0 RRU), 2.3 S3, 2.0 SQS. Peak
    growth in one invocation (last two rounds traced): poller 32.6 MiB, API 1.7, sender 1.1,
    scheduler 0.1. 4 x less CPU per message than the -n 1000 run below (since: fewer requests
    per message, moto's expression cache, an idle machine; not measured apart); at this rate
    20,000 + 20,000 would take about 2.3 h.
  -n 1000 (2026-11-27, the suite running alongside): 2044 s, 0.98 msg/s both ways together
    (0.49 each), 0.76 CPU s per message (1520 s of CPU, 74% of one core); 86 API actions;
    258 messages expunged after archiving; every invariant held (42 s to check). Per message:
    13.8 DynamoDB requests (24.2 WRU + 9.8 GSI WRU, 3.4 RRU), 2.3 S3, 1.9 SQS. Peak growth in
    one invocation (last two rounds traced): poller 64.9 MiB, API 2.0, sender 1.0, scheduler
    0.9 (the fan-out's is bench/fanout.py's).
  -n 100 (--profile): 310 s, 0.65 msg/s both ways together; 146 s of CPU in this process,
    0.73 CPU s per message. Per message (received and sent together, their receipts and the
    replies included): 13.7 DynamoDB requests (32.9 WRU + 14.4 GSI WRU, 3.2 RRU), 2.2 S3,
    1.5 SQS (+ the event source's receives and deletes).
  -n 40 (--profile): 221 s, 0.36 msg/s, 0.98 CPU s per message (the fixed costs weigh more).
  -n 200 (first two rounds traced for memory, the runner serial then): stopped after 26
    minutes still in its first round (fan-out, 200 sends, 400 receipts: 10 CPU minutes), hence
    the tracing of the last rounds instead.
  --quick, peak growth per invocation: traced in the first two rounds (cold starts, imports
    included) API 9.8 MiB, fan-out 10.8, poller 2.3, scheduler 1.7, sender 8.9; in the last two
    (warm) API 0.5, poller 0.7, scheduler 0.1, sender 0.7. 14 API actions, one message
    expunged after archiving, 81 s (40% of a core).

Where the time goes (CPU by thread, --profile, n=100 and n=40): moto's request threads 48%,
the handlers' threads (handler code, pecflow, powertools, botocore's client side) 40 to 42%,
the bench's main thread (the SMTPS submissions, the checks) 4 to 6%, the PEC simulator 4%. A
sender invocation spends 130 ms of CPU and 1.2 s waiting on moto; a poller 0.6 s and 2.0 s.
moto, and the HTTP round trip to it (botocore serialising, werkzeug, moto parsing), is the
first half; the handlers' own work the second; the bench's setup is not the bottleneck (the
CSV and attachments upload once, the submissions reuse one SMTPS session per sender a round).

Extrapolated: at 0.73 CPU s per message, 20,000 + 20,000 need 8.1 h of one core even on an
idle machine (one process, one GIL: moto's share included), 17 h at the wall rate measured
here; one hour (the target, 11.1 msg/s) needs about 8 x less CPU per message. -n 2000
would take about an hour on an idle machine. --quick (6 each way, two rounds: a campaign
within one quota window needs one poll; memory not traced, tracing made it 3 x slower) shows
the invariants and the request figures, not the rate: 26 s on an idle machine (38 s with the
last round traced).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import smtplib
import sys
import threading
import time
import traceback
import tracemalloc
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from _env import REPO  # first: the paths and fake AWS credentials
from cost import _TABLE_KEYS, ESM, LogCounter, Meter, Phase

CAMPAIGN_BOX = "ufficio@pec.alfa.test"
INBOXES = [f"{name}@pec.alfa.test" for name in ("protocollo", "amministrazione", "legale", "acquisti")]
EXPUNGING = INBOXES[3]  # saturation: expunged once archived
CAMPAIGN = "soak"
POLL = 5 * 60
QUOTA, WINDOW = 250, 1200  # the provider's pace (aruba)
PEOPLE = {"anna": "operator", "bruno": "operator", "carla": "admin"}
HANDLED_SHARE = 50  # one incoming message in 50 is worked by a person (reply or forward)
DELETED_SHARE = 200  # one in 200 moved to the bin
FULL = 20_000


@dataclass
class Work:
    """What the people did through the API: checked against the audit trail at the end."""

    actions: list[tuple[str, str, str, str]] = field(default_factory=list)  # mailbox, sha, actor, action
    sent: list[str] = field(default_factory=list)  # Message-IDs of replies and forwards
    refusals: list[str] = field(default_factory=list)  # any answer that was not 200
    requests: int = 0
    busy: set[str] = field(default_factory=set)  # messages already worked or deleted
    worked: int = 0  # messages replied to or forwarded
    deleted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Memory:
    """Peak tracemalloc growth per handler, from invocations that ran alone."""

    def __init__(self) -> None:
        self.peak: dict[str, int] = defaultdict(int)
        self.samples: Counter = Counter()
        self.in_flight = 0
        self.lock = threading.Lock()
        self.on = False

    def install(self) -> None:
        from local.runner import EventRunner

        invoke, memory = EventRunner._invoke, self

        def traced(runner: Any, function: Any, *a: Any, **k: Any) -> Any:
            if not memory.on:
                return invoke(runner, function, *a, **k)
            with memory.lock:
                memory.in_flight += 1
                alone = memory.in_flight == 1
                if alone:
                    tracemalloc.reset_peak()
                    start = tracemalloc.get_traced_memory()[0]
            try:
                return invoke(runner, function, *a, **k)
            finally:
                with memory.lock:
                    if alone and memory.in_flight == 1 and memory.on:
                        grown = tracemalloc.get_traced_memory()[1] - start
                        memory.peak[function.logical_id] = max(memory.peak[function.logical_id], grown)
                        memory.samples[function.logical_id] += 1
                    memory.in_flight -= 1

        EventRunner._invoke = traced


class Profiles(threading.Thread):
    """Where the CPU goes, in every thread: every 2 ms each thread's CPU time since the last look
    (its own clock) is charged to its thread, and, when it ran for most of the interval, to the
    function it is in and to every area on its stack."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="soak-profiler")
        self.stopping = threading.Event()
        self.own: Counter = Counter()  # (file, line, function) -> CPU s
        self.inside: Counter = Counter()  # area anywhere on the stack -> CPU s
        self.threads: Counter = Counter()  # thread name, numbers dropped -> CPU s

    def run(self) -> None:
        last: dict[int, float] = {}
        names: dict[int | None, str] = {}
        looked = time.perf_counter()
        while not self.stopping.wait(0.002):
            now = time.perf_counter()
            elapsed, looked = now - looked, now
            if len(names) != threading.active_count():
                names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == self.ident:
                    continue
                try:
                    cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except (OSError, OverflowError):
                    continue
                spent, last[ident] = cpu - last.get(ident, cpu), cpu
                if spent <= 0:
                    continue
                self.threads["".join(c for c in names.get(ident, "?") if not c.isdigit())] += spent
                if spent < elapsed / 2:  # ran a little, then waited: where it waits says nothing
                    self.own[("", 0, "(short bursts, not attributed)")] += spent
                    self.inside["(short bursts, not attributed)"] += spent
                    continue
                code = frame.f_code
                self.own[(code.co_filename, code.co_firstlineno, code.co_name)] += spent
                areas = set()
                while frame is not None:
                    areas.add(_area(frame.f_code.co_filename))
                    frame = frame.f_back
                for area in areas:
                    self.inside[area] += spent

    def stop(self) -> Profiles:
        self.stopping.set()
        self.join()
        return self


AREAS = (  # first match wins
    ("/functions/", "handlers (functions/)"),
    ("/pecflow/", "pecflow core"),
    ("/moto/", "moto"),
    ("/werkzeug/", "moto's HTTP server (werkzeug)"),
    ("socketserver", "moto's HTTP server (werkzeug)"),
    ("http/server", "moto's HTTP server (werkzeug)"),
    ("/botocore/", "boto3/botocore"),
    ("/boto3/", "boto3/botocore"),
    ("/urllib3/", "boto3/botocore"),
    ("/aws_lambda_powertools/", "powertools"),
    ("/pydantic", "pydantic"),
    ("/local/pec_provider", "PEC simulator"),
    ("/local/pecbuild", "PEC simulator"),
    ("/local/pec_", "PEC simulator"),
    ("/aiosmtpd/", "PEC simulator"),
    ("/local/runner", "event runner"),
    ("/local/aws", "local AWS glue (local/aws.py)"),
    ("/local/", "local stack, other"),
    ("/imapclient/", "IMAP client"),
    ("imaplib", "IMAP client"),
    ("/jinja2/", "jinja2"),
    ("/cryptography/", "cryptography"),
    ("/email/", "email (stdlib)"),
    ("/bench/", "the bench itself"),
    ("/json/", "json"),
    ("/xml/", "xml"),
    ("/copy.py", "copy.deepcopy"),
    ("/ssl.py", "ssl"),
    ("/socket.py", "socket"),
    ("/selectors.py", "select/wait"),
    ("/threading.py", "select/wait"),
    ("/asyncio/", "asyncio"),
)


def _area(filename: str) -> str:
    for needle, area in AREAS:
        if needle in filename:
            return area
    return "other Python" if filename != "~" else "builtins"


def where_time_goes(profile: Profiles, wall: float, top: int = 25) -> None:
    cpu = sum(profile.own.values())
    print(f"\n== where the CPU goes: {cpu:.0f} s of this process's threads over {wall:.0f} s wall ==")
    print("  by thread:")
    for name, seconds in profile.threads.most_common(12):
        print(f"    {name:<44} {seconds:8.1f} s  {seconds / cpu:6.1%}")
    print("  by area on the stack (inclusive: a handler waiting on botocore counts in both):")
    for area, seconds in profile.inside.most_common():
        print(f"    {area:<44} {seconds:8.1f} s  {seconds / cpu:6.1%}")
    print(f"  top {top} functions by own CPU:")
    for (filename, line, name), seconds in profile.own.most_common(top):
        short = filename.split("site-packages/")[-1].replace(str(REPO) + "/", "")
        print(f"    {seconds:8.1f} s  {short}:{line} {name}")


# --- the traffic ----------------------------------------------------------------------------------
def upload_campaign(stack: Any, n: int, beta: Any) -> None:
    import csv
    import io

    for i in range(n):
        beta.add_mailbox(f"cliente{i:05d}@pec.beta.test")
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(["PEC", "Ragione Sociale", "Importo", "Scadenza"])
    writer.writerows(
        [f"cliente{i:05d}@pec.beta.test", f"Società {i} S.r.l.", f"{1000 + i},50", "31/01/2026"]
        for i in range(n)
    )
    manifest = {
        "mailbox": CAMPAIGN_BOX,
        "subject": "Sollecito di pagamento – {{ ragione_sociale }}",
        "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo l'importo di {{ importo|importo }} "
        "scaduto il {{ scadenza|data }}.\n",
        "attachments": ["condizioni-generali.pdf"],
        "receipt_type": "breve",
    }
    s3, bucket = stack.aws.client("s3"), stack.aws.physical("CampaignBucket")
    pdf = b"%PDF-1.4 condizioni generali\n" + b"x" * 20_000 + b"\n%%EOF\n"
    s3.put_object(Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/attachments/condizioni-generali.pdf", Body=pdf)
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/recipients.csv", Body=text.getvalue().encode("cp1252")
    )
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/manifest.json", Body=json.dumps(manifest).encode()
    )


def submit_incoming(beta: Any, senders: list, first: int, count: int) -> None:
    """`count` certified messages to the inboxes, one SMTPS session per sender for the round."""
    from local.pecbuild import builder

    by_sender: dict[int, list[int]] = defaultdict(list)
    for i in range(first, first + count):
        by_sender[i % len(senders)].append(i)
    for s, numbers in by_sender.items():
        account = senders[s]
        with smtplib.SMTP_SSL(beta.host, beta.port, context=beta.ssl_context(), timeout=60) as smtp:
            smtp.login(account.address, account.password)
            for i in numbers:
                to = INBOXES[i % len(INBOXES)]
                raw = builder.messaggio_originale(
                    mittente=account.address, destinatari=[to], oggetto=f"Richiesta n. {i}",
                    testo=f"Buongiorno,\nin allegato la documentazione della pratica {i}.\n" * 8,
                    allegati=[("documento.pdf", "application/pdf", b"%PDF-1.4\n" + bytes([i % 251]) * 12_000)],
                    message_id=f"<richiesta-{i}@pec.beta.test>",
                )  # fmt: skip
                smtp.sendmail(account.address, [to], raw)


def shift(
    api_url: str, issuer: Any, work: Work, jobs: int, deletions: int, rng: random.Random, forward_to: str
) -> None:
    """The people at work for one round: each job is list → open → take in charge → reply or
    forward → mark handled; each deletion is list → open → delete (the admin)."""
    from local.api_server import json_request

    def call(path: str, method: str = "GET", *, who: str, body: Any = None) -> Any:
        status, answer = json_request(f"{api_url}{path}", method, token=issuer.issue(who), body=body)
        with work.lock:
            work.requests += 1
            if status != 200:
                work.refusals.append(f"{who} {method} {path}: {status} {answer}")
        return answer if status == 200 else None

    def pick(who: str, box: str) -> str | None:
        page = call(f"/mailboxes/{quote(box)}/messages?handling=da-gestire&size=50", who=who)
        candidates = [
            m["sha256"] for m in (page or {}).get("messages", []) if m["kind"] == "posta-certificata"
        ]
        with work.lock:
            free = [sha for sha in candidates if sha not in work.busy]
            if not free:
                return None
            sha = rng.choice(free)
            work.busy.add(sha)
        return sha

    def act(who: str, box: str, sha: str, action: str, path: str, body: Any = None) -> Any:
        answer = call(
            f"/mailboxes/{quote(box)}/messages/{sha}{path}", "POST" if body else "GET", who=who, body=body
        )
        if answer is not None:
            with work.lock:
                work.actions.append((box, sha, who, action))
        return answer

    for j in range(jobs + deletions):
        box = rng.choice(INBOXES)
        who = "carla" if j >= jobs else ("anna", "bruno")[j % 2]
        sha = pick(who, box)
        if sha is None:
            continue
        act(who, box, sha, "view", "")
        if who == "carla":
            if act(who, box, sha, "delete", "/delete", {"reason": "doppione, già protocollato"}) is not None:
                with work.lock:
                    work.deleted += 1
            continue
        if act(who, box, sha, "take-in-charge", "/handling", {"act": "take-in-charge"}) is None:
            continue
        if j % 3 == 2:
            sent = act(who, box, sha, "forward", "/forward", {"to": forward_to, "text": "Per competenza."})
        else:
            sent = act(
                who, box, sha, "reply", "/reply", {"text": "Gentile cliente,\nla pratica è in lavorazione.\n"}
            )
        if sent is not None:
            with work.lock:
                work.sent.append(sent["message_id"])
                work.worked += 1
        act(who, box, sha, "mark-handled", "/handling", {"act": "mark-handled", "note": "risposto"})


# --- the invariants -------------------------------------------------------------------------------
def check(stack: Any, n_in: int, n_out: int, work: Work) -> list[str]:
    from pecflow import bootstrap
    from pecflow.domain.reconcile import State

    problems: list[str] = []
    config = stack.deployment()
    net, dovecot = stack.network, stack.dovecot
    s3, bucket = stack.aws.client("s3"), config.archive_bucket
    messages = bootstrap.message_store(config)
    outgoing = bootstrap.outgoing_store(config)
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="messages/")
        for o in page.get("Contents", [])
    }
    delivered_to: Counter = Counter(d.mailbox for d in net.deliveries if d.error is None)
    incoming = 0
    for box in [*INBOXES, CAMPAIGN_BOX]:
        with dovecot.connect(box) as client:
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["ALL"])
            on_provider = {}
            for chunk in range(0, len(uids), 500):
                fetched = client.fetch(uids[chunk : chunk + 500], ["BODY.PEEK[]"])
                on_provider.update(
                    {hashlib.sha256(v[b"BODY[]"]).hexdigest(): v[b"BODY[]"] for v in fetched.values()}
                )
        records = list(messages.every(box))
        shas = Counter(r.sha256 for r in records)
        if any(c > 1 for c in shas.values()):
            problems.append(f"{box}: recorded twice: {[s for s, c in shas.items() if c > 1][:3]}")
        if len(shas) != delivered_to[box]:
            problems.append(f"{box}: {delivered_to[box]} delivered, {len(shas)} recorded")
        missing = set(on_provider) - set(shas)
        if missing:
            problems.append(f"{box}: {len(missing)} messages on the provider not recorded")
        gone = set(shas) - set(on_provider)
        if gone and box != EXPUNGING:
            problems.append(f"{box}: {len(gone)} recorded messages gone from the provider")
        for sha in shas:
            key = f"messages/{sha[:2]}/{sha}.eml"
            if key not in keys:
                problems.append(
                    f"{box}: {sha} recorded, not archived" + (" (expunged!)" if sha in gone else "")
                )
                continue
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if body != on_provider.get(sha, body) or hashlib.sha256(body).hexdigest() != sha:
                problems.append(f"{box}: the archived {sha} differs from the original")
        if box in INBOXES:
            incoming += sum(1 for r in records if r.kind == "posta-certificata")
        if box == EXPUNGING:
            print(f"  {box}: {len(gone)} expunged from the provider after archiving, {len(on_provider)} left")
    if incoming != n_in:
        problems.append(f"{incoming} incoming messages recorded, {n_in} sent")

    counters = bootstrap.campaign_admin(config).stats(CAMPAIGN)["counters"]
    jobs = list(outgoing.campaign_jobs(CAMPAIGN))
    states = Counter(j.state for j in jobs)
    got = Counter(d.mailbox for d in net.deliveries if d.kind == "posta-certificata" and d.error is None)
    once = sum(1 for i in range(n_out) if got[f"cliente{i:05d}@pec.beta.test"] == 1)
    if once != n_out:
        problems.append(f"{n_out - once} campaign recipients did not get exactly one message")
    facts = {"total": len(jobs), "delivered": states[State.DELIVERED], "to_send": states[State.PENDING],
             "errors": states[State.ERROR], "delivery_failures": states[State.DELIVERY_FAILED]}  # fmt: skip
    shown = {k: counters[k] for k in facts}
    if shown != facts or facts["total"] != n_out or facts["delivered"] != n_out or counters["waiting"]:
        problems.append(f"campaign statistics {counters} against the jobs {facts} (n={n_out})")
    undelivered = 0
    for job in jobs:
        kinds = sorted(r["kind"] for r in job.receipts.values())
        if job.state != State.DELIVERED or kinds != ["accettazione", "avvenuta-consegna"]:
            undelivered += 1
    for message_id in work.sent:
        for answer in outgoing.jobs(message_id):
            if answer.state != State.DELIVERED:
                undelivered += 1
    if undelivered:
        problems.append(f"{undelivered} jobs not delivered with both receipts reconciled")

    audit = bootstrap.audit_log(config)
    for box in INBOXES:
        verdict = audit.verify(box)
        if not verdict.ok:
            problems.append(f"{box}: the audit chain is broken at {verdict.broken_at}: {verdict.reason}")
    trails: dict[tuple[str, str], Counter] = {}
    for box, sha, _, _ in work.actions:
        if (box, sha) not in trails:
            trails[(box, sha)] = Counter((e.actor, str(e.action)) for e in audit.trail(box, sha))
    wanted = Counter((box, sha, actor, action) for box, sha, actor, action in work.actions)
    lost = [k for k, c in wanted.items() if trails[(k[0], k[1])][(k[2], k[3])] < c]
    if lost:
        problems.append(f"{len(lost)} API actions missing from the audit trail, e.g. {lost[:3]}")
    if work.refusals:
        problems.append(f"{len(work.refusals)} API requests refused, e.g. {work.refusals[:3]}")
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    if failures:
        problems.append(
            f"{len(failures)} invocations failed, e.g. {failures[0].function}: {failures[0].error}"
        )
    return problems


# --- the run --------------------------------------------------------------------------------------
def run(n_in: int, n_out: int, memory_rounds: int, profiles: Profiles | None) -> tuple[float, list[str]]:
    from local.pec_provider import Quota
    from local.pecbuild import builder
    from local.stack import LocalStack
    from pecflow import bootstrap
    from pecflow.domain.mailbox import Saturation, SaturationPolicy

    started = time.perf_counter()
    if profiles is not None:
        profiles.start()  # before the stack: its threads are sampled too
    memory = Memory()
    with LocalStack.start(state_file=None) as stack:
        meter = Meter(stack.aws.client("dynamodb"))
        meter.install()
        memory.install()
        for table in stack.aws.client("dynamodb").list_tables()["TableNames"]:
            _TABLE_KEYS.update(k["AttributeName"] for k in meter._table(table)["KeySchema"])
        net, runner = stack.network, stack.runner
        alfa = net.add_provider(
            builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"), quota=Quota(QUOTA, WINDOW)
        )
        beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
        stack.add_company_mailbox(alfa, CAMPAIGN_BOX, quota_preset="aruba")
        for box in INBOXES:
            saturation = (
                SaturationPolicy(mode=Saturation.ABOVE_QUOTA, percent=0.1, archive_folder=None, expunge=True)
                if box == EXPUNGING
                else None
            )
            stack.add_company_mailbox(
                alfa, box, quota="20M" if box == EXPUNGING else None, saturation=saturation
            )
        senders = [beta.add_mailbox(f"mittente{i}@pec.beta.test") for i in range(12)]
        forward_to = beta.add_mailbox("ufficio.legale@pec.beta.test").address
        api = stack.serve_api()
        for who, role in PEOPLE.items():
            stack.add_person(who, f"{who}@alfa.test", who.title(), dict.fromkeys(INBOXES, role))
        assert stack.issuer is not None
        upload_campaign(stack, n_out, beta)
        ready = time.perf_counter()
        print(f"stack ready, {n_out} recipients uploaded: {ready - started:.1f} s", file=sys.stderr)

        phase = Phase()
        meter.phase = phase
        real_stdout = sys.stdout
        sys.stdout = LogCounter(meter, real_stdout)
        admin = bootstrap.campaign_admin(stack.deployment())
        # the campaign's last window needs one poll (250 go out in it); two at least, so the people
        # have something to work on in the second
        rounds = max(2, (math.ceil(n_out / QUOTA) - 1) * WINDOW // POLL + 1)
        per_round = math.ceil(n_in / rounds)
        rng, work = random.Random(19), Work()
        submitted, r = 0, 0
        serial, concurrent = ThreadPoolExecutor(1, thread_name_prefix="soak-serial"), runner._executor
        t0, cpu0 = time.perf_counter(), os.times()
        while True:
            count = min(per_round, n_in - submitted)
            with work.lock:  # the people's share of what has arrived, catching up what they missed
                jobs = max(0, math.ceil(submitted * max(3, n_in // HANDLED_SHARE) / n_in) - work.worked)
                deletions = max(0, math.ceil(submitted * max(1, n_in // DELETED_SHARE) / n_in) - work.deleted)
            # the last rounds traced, the runner one invocation at a time (each peak its own):
            # tracing the first (the fan-out, a whole quota window of sends) made it over 3 x slower
            measuring = rounds - memory_rounds <= r < rounds
            if measuring:
                if not memory.on:
                    tracemalloc.start()
                memory.on, runner._executor = True, serial
            elif memory.on:
                memory.on, runner._executor = False, concurrent
                tracemalloc.stop()
            # the people work while the providers deliver, between two moves of the clock (a
            # request during one would last minutes of virtual time: past the API's time-out)
            people = threading.Thread(
                target=shift,
                args=(api.url, stack.issuer, work, jobs, deletions, rng, forward_to),
                daemon=True,
            )
            people.start()
            if count:
                submit_incoming(beta, senders, submitted, count)
                submitted += count
            people.join()
            net.wait_idle(600)
            runner.advance(POLL, timeout=3600)
            net.wait_idle(600)
            r += 1
            counters = admin.stats(CAMPAIGN)["counters"]
            left = counters["total"] - counters["delivered"] if counters["total"] else n_out
            print(f"round {r}: {submitted}/{n_in} submitted, campaign {counters['delivered']}/{n_out} delivered, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)  # fmt: skip
            if submitted >= n_in and left == 0 and r >= rounds:
                break
            if r > rounds * 3 + 20:
                raise SystemExit(f"the soak did not settle after {r} rounds: {counters}")
        if memory.on:
            memory.on, runner._executor = False, concurrent
            tracemalloc.stop()
        for _ in range(3):  # the last replies' receipts, the last polls
            runner.advance(POLL, timeout=3600)
            net.wait_idle(600)
        wall, cpu1 = time.perf_counter() - t0, os.times()
        cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        meter.phase = None
        sys.stdout = real_stdout
        stats = profiles.stop() if profiles is not None else None
        serial.shutdown()

        print(f"\n== soak: {n_in} received across {len(INBOXES)} mailboxes, a {n_out}-recipient campaign, "
              f"{len(work.actions)} API actions ({work.requests} requests), {r} rounds of {POLL // 60} virtual "
              f"minutes, {wall:.0f} s ==")  # fmt: skip
        print("invariants:")
        checking = time.perf_counter()
        problems = check(stack, n_in, n_out, work)
        for problem in problems:
            print(f"  FAILED {problem}")
        verdict = "all hold" if not problems else f"{len(problems)} failed"
        print(f"  {verdict} ({time.perf_counter() - checking:.0f} s to check)")
        invocations = runner.invocations

    figures(phase, invocations, memory, meter, n_in, n_out, wall, work)
    if stats is not None:
        where_time_goes(stats, wall)
    rate = (n_in + n_out) / wall
    full = 2 * FULL / rate
    per = cpu / (n_in + n_out)
    print(f"\nthroughput: {n_in / wall:.2f} msg/s received, {n_out / wall:.2f} msg/s sent (together {rate:.2f}); "
          f"the full run ({FULL:,} + {FULL:,}) would take {full / 3600:.1f} h at this rate")  # fmt: skip
    print(f"CPU: {cpu:.0f} s of this process in {wall:.0f} s ({cpu / wall:.0%} of one core; Dovecot apart), "
          f"{per:.2f} CPU s per message: the full run needs {2 * FULL * per / 3600:.1f} h of CPU, "
          f"one core's worth (the GIL) at best")  # fmt: skip
    return rate, problems


def figures(phase: Phase, invocations: list, memory: Memory, meter: Meter, n_in: int, n_out: int,
            wall: float, work: Work) -> None:  # fmt: skip
    n = n_in + n_out
    print(
        f"\n== AWS requests per message ({n} = {n_in} received + {n_out} sent; receipts and replies included) =="
    )
    print(
        f"{'function':<30} {'service':<15} {'operation':<24} {'req/msg':>8} {'WRU/msg':>8} {'GSI/msg':>8} {'RRU/msg':>8}"
    )
    by_service: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for (label, service, operation), line in sorted(phase.lines.items()):
        if not line.requests:
            continue
        print(f"{label:<30} {service:<15} {operation:<24} {line.requests / n:8.3f} {line.wru / n:8.2f} "
              f"{line.gsi_wru / n:8.2f} {line.rru / n:8.2f}")  # fmt: skip
        total = by_service[service]
        total[0] += line.requests
        total[1] += line.wru
        total[2] += line.gsi_wru
        total[3] += line.rru
    print("per message, by service:")
    for service, (requests, wru, gsi, rru) in sorted(by_service.items()):
        extra = (
            f", {wru / n:.2f} WRU + {gsi / n:.2f} GSI WRU, {rru / n:.2f} RRU" if service == "dynamodb" else ""
        )
        print(f"  {service:<15} {requests / n:7.2f} requests{extra}")
    counted = Counter(i.function for i in invocations)
    traced = (
        "tracemalloc growth in one invocation"
        if any(memory.samples.values())
        else "not traced: --memory-rounds K"
    )
    print(f"\n== handlers: invocations, CPU, peak memory ({traced}) ==")
    seconds: dict[str, float] = defaultdict(float)
    for i in invocations:
        seconds[i.function] += meter.cpu.get(i.request_id, 0.0)
    for fid, count in sorted(counted.items()):
        peak = (
            f"{memory.peak[fid] / 2**20:6.1f} MiB (of {memory.samples[fid]})"
            if memory.samples[fid]
            else "   not sampled"
        )
        print(f"  {fid:<30} {count:7d} invocations, {seconds[fid] / count * 1000:6.0f} ms CPU each, "
              f"{phase.waited.get(fid, 0) / count * 1000:6.0f} ms on moto, peak {peak}")  # fmt: skip
    if ESM in phase.waited:
        print(f"  {ESM:<30} {phase.waited[ESM]:.0f} s on moto in all")


def print_stacks(signum: int, frame: Any) -> None:
    """Every thread's stack, to stderr. Run by Python in the main thread between two bytecodes
    (faulthandler's dump runs inside the signal and crashed a 20,000 run mid-collection)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, top in sys._current_frames().items():
        print(f"--- thread {names.get(ident, ident)}", file=sys.stderr)
        traceback.print_stack(top, file=sys.stderr)
    sys.stderr.flush()


def main() -> None:
    # a long run is looked into without stopping it: `kill -USR1 <pid>` prints every thread's stack
    signal.signal(signal.SIGUSR1, print_stacks)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="6 messages each way (the invariants and figures, not the rate)"
    )
    parser.add_argument("-n", type=int, help=f"messages each way (default {FULL})")
    parser.add_argument(
        "--memory-rounds",
        type=int,
        help="rounds traced for peak memory, the last ones (default 2; --quick: none, to stay under 30 s)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="where the CPU goes, by thread, area and function (sampled)"
    )
    parser.add_argument("--target", type=float, default=2 * FULL / 3600,
                        help="msg/s both ways together (default: the full run in one hour)")  # fmt: skip
    args = parser.parse_args()
    n = args.n or (6 if args.quick else FULL)
    rate, problems = run(
        n,
        n,
        args.memory_rounds if args.memory_rounds is not None else (0 if args.quick else 2),
        Profiles() if args.profile else None,
    )
    verdict = "" if not problems else f"; {len(problems)} invariants FAILED"
    print(f"soak: {rate:.2f} msg/s (target {args.target:.2f}){verdict}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
