"""A 10,000-recipient campaign under the `aruba` preset (250 per rolling 20 minutes), on a virtual clock.

The real RateLimiter, on DynamoDB in moto (in-process, the QuotaTable of template.yaml), paces
N sender workers (5, as the send queue's MaximumConcurrency would run them). Each worker takes
visible jobs from a simulated SQS queue one at a time (the sender's BatchSize is 1) and does what
the sender does: it calls `acquire` with a 6-hour horizon at the virtual time. A slot free now:
it sends (0.5-2 s of virtual time; the provider counts the message when it arrives, at the end).
A later slot: the limiter reserves it for this job (waiting slots are paced 0.5 s apart, so
waiting jobs wake one by one at the speed the workers send) and the job goes back on the queue
with a visibility delay of ceil(wait) seconds (SQS delays are whole seconds): it wakes once, at
its slot, and sends without asking the limiter again. A job woken more than WAKE (8 s) after its
slot gives the slot back and takes a new one. No busy retry. Acquisitions whose virtual times
fall within one DynamoDB round trip (10 ms) run at the same time on real threads, so the
optimistic-concurrency races are real ones. The policy is the deployed one
(`quota.sending_policy`: margin 15 s, slots paced 0.5 s apart): its margin covers the round trip,
the longest send and the lateness a reserved slot may be used with.

The theoretical minimum. Number the sends in the order the provider counts them, s_0 <= s_1 <=
... <= s_{N-1}. Under L sends per rolling window w, any L + 1 consecutive sends span at least w
(otherwise [s_i, s_i + w) would hold L + 1), so s_{i+L} >= s_i + w and, chaining k = ceil(N/L) - 1
times, s_{N-1} >= s_{N-1-kL} + k*w >= s_0 + k*w. The campaign ends when the last message has
been sent, at least one send duration (0.5 s here) after it starts. With t0 the start of the
first send (the campaign's start): minimum = (ceil(N/L) - 1) * w + 0.5 s; for 10,000 sends,
39 * 1200 s + 0.5 s = 46,800.5 s (13 h). It is reached only by senders infinitely fast: all of a
window's L sends at the instant the window opens. The measured overhead includes the time 5
workers take to send each window's 250 messages (about a minute), the margin (2.5 s a window),
the whole-second visibility delays, and the limiter's own races.

`--strategy refuse` measures the alternative without reservations: a refused job is put back
until the next free slot, and every waiting job wakes for the same slot. `--hold S`: a worker
refused for a slot at most S seconds away waits for it in place instead.

A job refused beyond the horizon sleeps until its own slot can be reserved, its place in line
estimated from the jobs ahead of it (`sending.beyond_horizon_wake`). Measured (2026-11-27, full
run, 10,000 recipients): before, each came back within half an hour of the horizon's end, and
all but a few were refused again: 56,272 refusals (6.63 limiter calls a send), 66,022 jobs put
back, 360,582 receives; now 5,632 refusals (1.56 calls a send: each job beyond the horizon
refused once), 15,382 put back, 82,418 receives; completion the same, 1.52 % over the minimum.

Reported: sends, windows over quota (quota.violations on the provider's arrival times, and on the
slot times), completion against the minimum, the limiter's counters (acquired, refused, lost
races re-decided, give-ups on contention) and the queue's (receives, jobs put back).
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from _env import REPO  # first: the paths and fake AWS credentials

os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from local.aws import LocalAws  # noqa: E402
from pecflow.adapters.ratelimit import RateLimiter  # noqa: E402
from pecflow.domain import quota  # noqa: E402
from pecflow.services.sending import RESERVE_HORIZON_SECONDS, beyond_horizon_wake  # noqa: E402

MAILBOX = "campagne@pec.example.it"
ROUND_TRIP = 0.010  # a DynamoDB read + conditional write, virtual seconds
INVOCATION = 0.020  # a Lambda invocation's own overhead per batch
SEND = (0.5, 2.0)  # SMTP submission, virtual seconds
WAKE = float(quota.LATE_FOR_SLOT_SECONDS)  # a reserved slot is used at most this late, as the sender
MAX_VISIBILITY = 43_200  # SQS: at most 12 hours


@dataclass(order=True)
class Message:
    visible_at: float
    seq: int
    job: int = field(compare=False)


class Queue:
    """An SQS queue as the sender sees it: receive visible messages, put some back with a delay."""

    def __init__(self, jobs: int, at: float):
        self.heap = [Message(at, n, n) for n in range(jobs)]
        heapq.heapify(self.heap)
        self.seq = jobs
        self.in_flight = 0
        self.receives = 0
        self.returned = 0

    def receive(self, now: float, batch: int) -> list[int]:
        self.receives += 1
        jobs = []
        while self.heap and self.heap[0].visible_at <= now and len(jobs) < batch:
            jobs.append(heapq.heappop(self.heap).job)
        self.in_flight += len(jobs)
        return jobs

    def delete(self, n: int = 1) -> None:
        self.in_flight -= n

    def put_back(self, jobs: list[int], visible_at: float) -> None:
        for job in jobs:
            self.seq += 1
            heapq.heappush(self.heap, Message(visible_at, self.seq, job))
        self.in_flight -= len(jobs)
        self.returned += len(jobs)

    def next_visible(self) -> float | None:
        return self.heap[0].visible_at if self.heap else None


@dataclass
class Worker:
    number: int
    batch: list[int] = field(default_factory=list)
    token: int = 0  # events scheduled with an older token are stale
    idle: bool = False
    wake: float = math.inf


def simulate(
    recipients: int,
    workers: int,
    batch_size: int,
    seed: int,
    t0: float,
    hold: float = 0.0,
    horizon: float = 0.0,
) -> dict:
    # the policy the deployed senders apply (margin and pace included), not one of the bench's own
    policy = quota.sending_policy("aruba")
    provider = quota.policy_from("aruba")  # what the provider enforces: no margin
    rng = random.Random(seed)
    with mock_aws():
        aws = LocalAws.in_process(REPO / "template.yaml", stack_name="bench-quota")
        limiter = RateLimiter(aws.physical("QuotaTable"), lambda _: policy, dynamodb=aws.resource("dynamodb"))
        queue = Queue(recipients, t0)
        crew = [Worker(n) for n in range(workers)]
        events: list[tuple[float, int, int, int, str]] = []
        counter = [0]
        slots, arrivals, groups, held, late = [], [], {"concurrent": 0, "largest": 1}, [0], [0]
        reserved: dict[int, float] = {}  # job -> the future slot it holds (the sender's reservations)

        def schedule(worker: Worker, at: float, kind: str) -> None:
            counter[0] += 1
            heapq.heappush(events, (at, counter[0], worker.number, worker.token, kind))

        def receive(worker: Worker, now: float) -> None:
            worker.batch = queue.receive(now, batch_size)
            if worker.batch:
                worker.idle = False
                schedule(worker, now + INVOCATION, "acquire")
                return
            upcoming = queue.next_visible()
            if upcoming is None and queue.in_flight == 0:
                return  # the campaign is over for this worker
            worker.idle, worker.wake = True, upcoming if upcoming is not None else math.inf
            worker.token += 1
            if upcoming is not None:
                schedule(worker, upcoming, "receive")  # long polling: back when a message shows

        def put_back(jobs: list[int], visible_at: float) -> None:
            queue.put_back(jobs, visible_at)
            for other in crew:  # wake long-polling workers earlier
                if other.idle and visible_at < other.wake:
                    other.token += 1
                    other.wake = visible_at
                    schedule(other, visible_at, "receive")

        for worker in crew:
            schedule(worker, t0, "receive")
        with ThreadPoolExecutor(workers) as pool:
            while events:
                at, _, number, token, kind = heapq.heappop(events)
                worker = crew[number]
                if token != worker.token:
                    continue
                if kind == "receive":
                    receive(worker, at)
                    continue
                # every acquisition within one round trip of this one runs at the same time
                group = [(at, worker)]
                while events and events[0][0] < at + ROUND_TRIP:
                    other_at, _, other_number, other_token, other_kind = events[0]
                    if other_kind != "acquire" or other_token != crew[other_number].token:
                        break
                    heapq.heappop(events)
                    group.append((other_at, crew[other_number]))

                def decide(item):
                    now, member = item
                    job = member.batch[0]
                    if job in reserved:  # woken for the slot it reserved: no limiter call
                        slot = reserved.pop(job)
                        if now - slot <= WAKE:
                            return quota.Decision(True, max(0.0, slot - now), slot)
                        late[0] += 1
                        limiter.release(MAILBOX, slot)  # woken too late (workers busy): a new slot
                    return limiter.acquire(MAILBOX, now, horizon=horizon)  # now, or reserved ahead

                if len(group) > 1:
                    groups["concurrent"] += 1
                    groups["largest"] = max(groups["largest"], len(group))
                    decisions = list(pool.map(decide, group))
                else:
                    decisions = [decide(group[0])]
                for (now, member), decision in zip(group, decisions):
                    answered = now + ROUND_TRIP
                    if decision.allowed and decision.at > answered + 1:
                        # a slot reserved ahead: this job sleeps on the queue until it, the rest go on
                        job = member.batch.pop(0)
                        reserved[job] = decision.at
                        put_back([job], answered + min(MAX_VISIBILITY, math.ceil(decision.at - answered)))
                        schedule(member, answered, "acquire" if member.batch else "receive")
                        continue
                    if decision.allowed:
                        start = max(answered, decision.at)
                        done = start + rng.uniform(*SEND)
                        slots.append(decision.at)
                        arrivals.append(done)
                        member.batch.pop(0)
                        queue.delete()
                        if member.batch:
                            schedule(member, done, "acquire")
                        else:
                            schedule(member, done, "receive")
                    else:
                        slot = decision.at if decision.at is not None else answered + decision.wait_seconds
                        if slot - answered <= hold:  # the slot is seconds away: wait for it in place
                            held[0] += 1
                            schedule(member, max(slot, answered), "acquire")
                            continue
                        if horizon and decision.at is not None:  # beyond the horizon: back when reservable,
                            job = member.batch[0]  # each job at its own moment (as the sender)
                            ahead = max(0, job - len(slots))  # jobs numbered in queue order
                            spacing = policy.window_seconds / policy.limit
                            wait = beyond_horizon_wake(slot - answered, ahead, spacing, f"<job-{job}>")
                        else:
                            wait = slot - answered
                        delay = min(MAX_VISIBILITY, max(0, math.ceil(wait)))
                        put_back(member.batch, answered + delay)
                        member.batch = []
                        schedule(member, answered, "receive")
    return {
        "policy": policy,
        "provider": provider,
        "slots": slots,
        "arrivals": arrivals,
        "stats": limiter.stats.as_dict(),
        "receives": queue.receives,
        "returned": queue.returned,
        "groups": groups,
        "held": held[0],
        "late": late[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2,000 recipients instead of 10,000 (under 30 s)"
    )
    parser.add_argument("--recipients", type=int, help="campaign size")
    parser.add_argument("--workers", type=int, default=5, help="concurrent senders (MaximumConcurrency)")
    parser.add_argument("--batch", type=int, default=1, help="SQS batch size (template.yaml: 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--strategy",
        choices=["reserve", "refuse"],
        default="reserve",
        help="reserve: a refused job reserves its future slot and wakes once for it (what the "
        "sender does, horizon 6 h); refuse: it is put back until the next free slot",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        metavar="S",
        help="a worker refused for a slot at most S seconds away waits for it and asks again, "
        "instead of putting its batch back (default 0: always put back)",
    )
    args = parser.parse_args()
    recipients = args.recipients or (2_000 if args.quick else 10_000)
    t0 = datetime.fromisoformat("2026-03-02T08:00:00+01:00").timestamp()

    started = time.perf_counter()
    run = simulate(
        recipients,
        args.workers,
        args.batch,
        args.seed,
        t0,
        args.hold,
        horizon=RESERVE_HORIZON_SECONDS if args.strategy == "reserve" else 0.0,
    )
    wall = time.perf_counter() - started

    provider, policy = run["provider"], run["policy"]
    sends = len(run["arrivals"])
    over = quota.violations(provider, run["arrivals"])
    over_slots = quota.violations(provider, run["slots"])
    completion = max(run["arrivals"]) - t0
    windows = math.ceil(recipients / provider.limit) - 1
    minimum = windows * provider.window_seconds + SEND[0]
    percent = (completion / minimum - 1) * 100
    stats = run["stats"]

    print(
        f"campaign: {recipients} recipients from one mailbox, {provider.describe()} (aruba), "
        f"{args.workers} workers, batches of {args.batch}, sends of {SEND[0]}-{SEND[1]} s, margin {policy.margin_seconds} s"
    )
    print(
        f"sends: {sends} of {recipients}; windows over quota: {len(over)} at the provider's arrival times, "
        f"{len(over_slots)} at the slot times"
    )
    print(
        f"completion: {completion:,.1f} s ({completion / 3600:.2f} h) after the first send; theoretical minimum "
        f"{windows} x {provider.window_seconds:.0f} s + {SEND[0]} s = {minimum:,.1f} s; "
        f"ratio {completion / minimum:.4f}"
    )
    print(
        f"limiter: {stats['acquired']} acquired, {stats['refused']} refused "
        f"({(stats['acquired'] + stats['refused'] + stats['contended']) / max(sends, 1):.2f} calls a send), "
        f"{stats['conflicts']} lost races re-decided, {stats['contended']} given up on contention; "
        f"{run['groups']['concurrent']} rounds of concurrent acquisitions (up to {run['groups']['largest']} at once)"
    )
    held = f", {run['held']} waits in place for a slot at most {args.hold:g} s away" if args.hold else ""
    print(
        f"queue: {run['receives']} receives, {run['returned']} jobs put back with a visibility delay{held}, "
        f"{run['late']} woken more than {WAKE:g} s after their slot (slot given back, a new one taken); "
        f"wall time {wall:.1f} s"
    )
    print(
        f"quota: {percent:.2f} % over the theoretical minimum, {len(over)} windows over quota "
        f"(target < 2 %, 0 windows)"
    )


if __name__ == "__main__":
    main()
