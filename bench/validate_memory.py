"""Campaign validation in constant memory: the peak Python memory (tracemalloc) of `validate` on a
1,000-row CSV and on a 100,000-row one (10,000 with --quick), read as a stream (rows made as they
are read: nothing held, nothing on disk), all rows valid and distinct.

Reported: each peak, and how much larger the big file's peak is than the small one's (target: at
most 20 % larger: nothing kept per row). The unit suite checks the same on 1,000 and 10,000 rows
(tests/unit/test_campaign_validate.py); this bench keeps the large figure.
"""

from __future__ import annotations

import argparse
import io
import time
import tracemalloc

import _env  # noqa: F401 - first: the paths

from pecflow.domain.campaign import DictAttachmentIndex, Manifest, validate  # noqa: E402

MANIFEST = {
    "mailbox": "ufficio@pec.azienda.it",
    "subject": "Sollecito {{ numero }}",
    "body_text": "Gentile {{ nome }},\nimporto {{ importo|importo }} entro il {{ scadenza|data }}.\n",
}
HEADER = b"Nome;PEC;Numero;Importo;Scadenza\r\n"
TARGET_PERCENT = 20


class Rows(io.RawIOBase):
    """`count` distinct valid rows, produced as they are read."""

    def __init__(self, count: int):
        self.count, self.done, self.buffer = count, 0, HEADER

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        parts, have = [self.buffer], len(self.buffer)
        while (size < 0 or have < size) and self.done < self.count:
            self.done += 1
            n = self.done
            line = b"Cliente %d;cliente%d@pec.it;%d;%d,50;02/03/2026\r\n" % (n, n, n, n)
            parts.append(line)
            have += len(line)
        data = b"".join(parts)
        if size < 0:
            out, self.buffer = data, b""
        else:
            out, self.buffer = data[:size], data[size:]
        return out


def peak(count: int) -> tuple[int, float]:
    """Peak traced bytes while validating `count` rows, and the seconds it took."""
    manifest = Manifest.from_dict(MANIFEST)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        report = validate(manifest, Rows(count), DictAttachmentIndex())
        top = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    try:
        if not report.valid or report.rows != count:
            raise SystemExit(f"{count} rows: expected a valid report of {count} rows, got {report.rows}")
    finally:
        report.close()
    return top, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000 (under 30 s)")
    args = parser.parse_args()
    large_rows = 10_000 if args.quick else 100_000
    peak(10)  # templates compiled, modules loaded
    small, small_s = peak(1_000)
    print(f"1,000 rows: peak {small / 1024:,.0f} KiB ({small_s:.1f} s)")
    large, large_s = peak(large_rows)
    print(f"{large_rows:,} rows: peak {large / 1024:,.0f} KiB ({large_s:.1f} s)")
    growth = 100 * (large - small) / small
    print(f"validate_memory_growth: {growth:.1f} % (target <= {TARGET_PERCENT} %)")


if __name__ == "__main__":
    main()
