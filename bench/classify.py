"""Throughput of pecflow.pec.message against the bare standard-library parse of the same bytes.

Corpus: a mixed mailbox from pecflow's own message builder, plus the real samples in
../shared/fixtures/pec when present. The baseline is `email.message_from_bytes(raw)` (the
fastest stdlib policy, compat32): it only builds the MIME tree and extracts nothing.
pecflow's figure includes everything `pecflow classify` reports (kind, references, receipt
type, provider, parties, dates, daticert, postacert.eml and its attachments, SdI).
Rounds alternate baseline and pecflow and the best round of each is kept, so a noisy,
shared machine disturbs both alike. Last line: the ratio (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import gc
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "shared")]  # the builders (local/) and the core

from local.pecbuild import corpus as pecmix  # noqa: E402
from pecflow.pec import message  # noqa: E402

TARGET = 1.2


def corpus(size: int, extra: list[Path]) -> tuple[list[bytes], list[bytes]]:
    """(builder-made messages, real samples)"""
    real = [p.read_bytes() for folder in extra if folder.is_dir() for p in sorted(folder.glob("*.eml"))]
    return [c.raw for c in pecmix.corpus(size, seed=2026)], real


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
    parser.add_argument("--messages", type=int, help="messages from the builder (default 3000; quick 600)")
    parser.add_argument("--rounds", type=int, help="timed rounds per parser (default 5; quick 3)")
    parser.add_argument(
        "--samples",
        type=Path,
        action="append",
        default=[REPO.parent / "shared" / "fixtures" / "pec"],
        help="extra folder of .eml files (repeatable)",
    )
    args = parser.parse_args()
    size = args.messages or (600 if args.quick else 3000)
    rounds = args.rounds or (3 if args.quick else 5)

    built, real = corpus(size, args.samples)
    raws = built + real
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
    if real:
        # the real samples alone (small, few attachments): the least favourable mix for pecflow
        few = best_of(rounds * 20, {k: functions[k] for k in list(functions)[:2]}, real)
        print(
            f"real samples only ({len(real)} messages): "
            f"{few['pecflow.pec.message.parse'] / few['stdlib compat32 (bare parse)']:.2f}x"
        )
    ratio = best["pecflow.pec.message.parse"] / base
    print(f"classify: {ratio:.2f} x bare compat32 parse (target <= {TARGET})")


if __name__ == "__main__":
    main()
