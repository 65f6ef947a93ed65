"""`make demo`: build a sample PEC mailbox with pecflow's own message builder, classify it,
and print what pecflow recognised. (The full local stack demo grows from here.)"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from pecflow import builder, cli, message

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60, help="messages in the sample mailbox")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the sample mailbox")
    parser.add_argument("--out", type=Path, default=REPO / ".local-run" / "demo-mailbox",
                        help="where the .eml files are written")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    print(f"Building a sample PEC mailbox of {args.messages} messages (seed {args.seed}) ...")
    samples = builder.corpus(args.messages, seed=args.seed)
    for sample in samples:
        (args.out / sample.name).write_bytes(sample.raw)

    print(f"Classifying {args.out} ...\n")
    rows, mismatches = [], []
    for sample in samples:
        result = message.classify((args.out / sample.name).read_bytes())
        rows.append({"file": sample.name, **result.to_dict()})
        sdi_type = result.sdi.type if result.sdi else None
        if (result.kind, result.ref_message_id, sdi_type) != \
                (sample.expected["kind"], sample.expected["ref_message_id"], sample.expected["sdi_type"]):
            mismatches.append(sample.name)
    cli._print_table(rows)
    elapsed = time.perf_counter() - started
    print(f"\nThe mailbox is in {args.out} — try: .venv/bin/pecflow classify --json {args.out}")
    if mismatches:
        print(f"CHECK FAILED: {len(mismatches)} message(s) not classified as built: {', '.join(mismatches)}",
              file=sys.stderr)
        return 1
    print(f"Check: all {len(samples)} messages classified as the builder made them ({elapsed:.1f} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
