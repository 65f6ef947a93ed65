"""The web console: what a browser downloads, and how long an inbox page of 50 takes to show.

Shipped: every JavaScript and CSS file of console/dist (`make console`), raw and gzip-compressed
(what CloudFront serves with compression on). Time: the local stack (Dovecot, the simulated
providers, moto's server, the API and the console served locally), a mailbox holding 55 messages,
headless Chromium (Debian's, as the browser tests) signed in as a viewer; the clock runs from the
click on the mailbox to the 50th row on screen, the page reloaded between runs (median of
`--runs`, 3 with `--quick`). Target: under 2 s (a page an office worker does not wait for).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import smtplib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _env import REPO  # first: the paths and fake AWS credentials

os.environ.pop("AWS_ENDPOINT_URL", None)

DIST = REPO / "console" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
MESSAGES = 55
TARGET_MS = 2000


def shipped() -> dict[str, tuple[int, int]]:
    """Bytes of the JavaScript and the CSS: (raw, gzip -9), summed per kind."""
    sizes: dict[str, tuple[int, int]] = {}
    for kind in ("js", "css"):
        raw = packed = 0
        for path in sorted((DIST / "assets").glob(f"*.{kind}")):
            data = path.read_bytes()
            raw += len(data)
            packed += len(gzip.compress(data, 9))
        sizes[kind] = (raw, packed)
    return sizes


@contextlib.contextmanager
def quiet():
    """The functions' JSON logs and metrics (written to stdout, as in Lambda) kept off the report."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def inbox_page_ms(runs: int) -> list[float]:
    from playwright.sync_api import expect, sync_playwright

    from local.api_server import json_request
    from local.aws import LocalAws
    from local.imap import Dovecot
    from local.pecbuild import builder
    from local.stack import TEMPLATE, LocalStack

    memory = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="pecflow-bench-", dir=memory)) if memory.is_dir() else None
    with Dovecot(workdir) as dovecot:
        aws = LocalAws.start(TEMPLATE, set_environ=False)
        try:
            with aws.environ(), LocalStack.start(dovecot=dovecot, aws=aws, state_file=None) as stack:
                net = stack.network
                gamma = net.add_provider(builder.Gestore("Gamma PEC S.p.A.", "pec.gamma.test"))
                office = stack.add_company_mailbox(gamma, "protocollo@pec.gamma.test")
                token = stack.add_person(
                    "paolo",
                    "paolo@gamma.test",
                    "Paolo Blu",
                    {office.address: "viewer"},
                    password="Paolo-pw-1",
                )
                console = stack.serve_console()
                with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:
                    for n in range(MESSAGES):
                        mx.sendmail(
                            "offerte@posta-ordinaria.test",
                            [office.address],
                            f"From: offerte@posta-ordinaria.test\r\nTo: {office.address}\r\n"
                            f"Subject: Offerta {n + 1:02d}\r\nMessage-ID: <offerta-{n}@posta-ordinaria.test>"
                            "\r\n\r\nNon e' posta certificata.\r\n".encode(),
                        )
                listed = 0
                for _ in range(6):  # a poll takes a bounded batch
                    stack.runner.advance(5 * 60)
                    net.wait_idle(60)
                    _, page = json_request(
                        f"{console.config()['api']}/mailboxes/{office.address}/messages?size=200", token=token
                    )
                    listed = len(page["messages"])
                    if listed == MESSAGES:
                        break
                if listed != MESSAGES:
                    raise SystemExit(f"only {listed} of {MESSAGES} messages reached the inbox")

                times = []
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
                    )
                    page = browser.new_context(
                        viewport={"width": 1280, "height": 900}, locale="it-IT"
                    ).new_page()
                    page.goto(console.url)
                    page.get_by_label("Nome utente").fill("paolo")
                    page.get_by_label("Password", exact=True).fill("Paolo-pw-1")
                    page.get_by_role("button", name="Accedi", exact=True).click()
                    for _ in range(runs):
                        mailbox = page.get_by_role("link", name=f"Apri {office.address}")
                        expect(mailbox).to_be_visible()
                        started = time.perf_counter()
                        mailbox.click()
                        expect(page.locator("table.messages tbody tr")).to_have_count(50)
                        times.append((time.perf_counter() - started) * 1000)
                        page.goto(console.url)  # back to the list of mailboxes, still signed in
                    browser.close()
                return times
        finally:
            aws.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs (under 30 s)")
    parser.add_argument("--runs", type=int, default=10, help="inbox pages timed (default 10)")
    args = parser.parse_args()
    if not (DIST / "index.html").is_file():
        print("console/dist is missing: run `make console` first", file=sys.stderr)
        return 2
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} is missing: `apt-get install chromium` (make test installs it)", file=sys.stderr)
        return 2
    for kind, (raw, packed) in shipped().items():
        print(f"{kind.upper():4} shipped: {raw:,} B ({packed:,} B gzip)")
    with quiet():
        times = inbox_page_ms(3 if args.quick else args.runs)
    print("inbox page of 50, each run: " + ", ".join(f"{t:.0f}" for t in times) + " ms")
    print(f"console_inbox_page: {statistics.median(times):.0f} ms (target < {TARGET_MS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
