"""The `pecflow` command."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from pecflow import __version__


def _classify_files(paths: list[str]):
    """(display name, result or None, error or None) per input, directories walked for *.eml.
    Never raises: a file that cannot be read or classified comes with its error."""
    from pecflow.pec import message

    def classified(raw: bytes):
        try:
            return message.classify(raw), None
        except Exception as exc:  # noqa: BLE001 - classify never raises; one file must not stop the rest
            return None, f"cannot classify: {type(exc).__name__}: {exc}"

    for name in paths:
        if name == "-":
            try:
                raw = sys.stdin.buffer.read()
            except (OSError, ValueError) as exc:
                yield "-", None, f"cannot read: {exc}"
                continue
            yield "-", *classified(raw)
            continue
        path = Path(name)
        try:
            targets = (
                sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".msg", ".txt")
                )
                if path.is_dir()
                else [path]
            )
        except OSError as exc:
            yield name, None, f"cannot read: {exc.strerror or exc}"
            continue
        for target in targets:
            try:
                raw = target.read_bytes()
            except OSError as exc:
                yield str(target), None, f"cannot read: {exc.strerror or exc}"
                continue
            yield (str(target), *classified(raw))


def cmd_classify(args) -> int:
    def clean(value):
        """JSON-ready data whose strings all encode to UTF-8 (lone surrogates replaced)."""
        if isinstance(value, str):
            return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value if value is None or isinstance(value, (bool, int, float)) else str(value)

    def failure(name: str, error: str) -> dict:
        return {
            "file": name,
            "kind": None,
            "ref_message_id": None,
            "receipt_type": None,
            "provider": None,
            "sdi": None,
            "rem": None,
            "problems": [error],
        }

    # whatever the terminal's encoding, printing a record cannot fail
    try:
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass
    failed = 0
    rows: list[dict] = []
    for name, result, error in _classify_files(args.files):
        record: dict | None = None
        if error is None:
            try:
                record = clean({"file": name, **result.to_dict()})
            except Exception as exc:  # noqa: BLE001 - a record we cannot build is reported, not fatal
                error = f"cannot report the result: {type(exc).__name__}: {exc}"
        if error is not None:
            failed += 1
            record = clean(failure(name, error))
        if not args.json:
            rows.append(record or {})
            continue
        try:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        except (TypeError, ValueError) as exc:  # UnicodeError included
            error = f"cannot print the result: {type(exc).__name__}: {exc}"
            print(json.dumps(failure(name, error)), flush=True)
    if not args.json:
        _print_table(rows)
    if failed:
        print(f"pecflow: {failed} file(s) could not be read or classified", file=sys.stderr)
    return 1 if failed else 0


def _print_table(rows: list[dict]) -> None:
    columns = [
        ("FILE", lambda r: Path(r["file"]).name),
        ("KIND", lambda r: r["kind"] or "(unreadable)"),
        ("TYPE", lambda r: r["receipt_type"] or ""),
        ("REM", lambda r: (r.get("rem") or {}).get("event") or ""),
        ("PROVIDER", lambda r: r["provider"] or ""),
        ("SDI", lambda r: (r["sdi"] or {}).get("type") or ""),
        ("REFERENCE", lambda r: r["ref_message_id"] or r.get("identificativo") or ""),
        ("PROBLEMS", lambda r: "; ".join(r["problems"])),
    ]
    table = [[str(get(r)) for _, get in columns] for r in rows]
    width = shutil.get_terminal_size((160, 20)).columns
    caps = [34, 26, 10, 26, 20, 4, 40, 200]
    sizes = [
        min(cap, max([len(h)] + [len(row[i]) for row in table]))
        for i, ((h, _), cap) in enumerate(zip(columns, caps))
    ]

    def fmt(cells):
        out = "  ".join(c[: s - 1] + "…" if len(c) > s else c.ljust(s) for c, s in zip(cells, sizes))
        return out[:width].rstrip()

    print(fmt([h for h, _ in columns]))
    for row in table:
        print(fmt(row))
    kinds_seen: dict[str, int] = {}
    for r in rows:
        kinds_seen[r["kind"] or "(unreadable)"] = kinds_seen.get(r["kind"] or "(unreadable)", 0) + 1
    summary = ", ".join(f"{k}: {n}" for k, n in sorted(kinds_seen.items(), key=lambda kv: -kv[1]))
    print(f"\n{len(rows)} message(s) — {summary}" if rows else "no messages")


# --- pecflow mailbox ------------------------------------------------------------------------------
def _deployment(args):
    from pecflow.config import Config

    if args.local:
        return Config.from_local()
    if args.stack:
        return Config.from_stack(args.stack, args.region)
    return Config.from_env()


def _password(args) -> str:
    import getpass
    import os

    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise SystemExit(f"pecflow: environment variable {args.password_env} is empty or not set")
        return value
    if args.password_stdin or not sys.stdin.isatty():
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise SystemExit("pecflow: no password on standard input")
        return value
    return getpass.getpass(f"Password of {args.address}: ")


def cmd_mailbox_add(args) -> int:
    from pecflow import bootstrap
    from pecflow.domain.mailbox import ConfigError, MailboxConfig, Saturation, SaturationPolicy
    from pecflow.domain.ports import MailboxUnavailable

    try:
        config = MailboxConfig(
            address=args.address.lower(),
            imap_host=args.imap_host,
            imap_port=args.imap_port,
            smtp_host=args.smtp_host or args.imap_host.replace("imap", "smtp", 1),
            smtp_port=args.smtp_port,
            folders=tuple(args.folder or ["INBOX"]),
            quota_preset=args.quota_preset,
            saturation=SaturationPolicy(
                Saturation(args.saturation),
                days=args.days,
                percent=args.percent,
                archive_folder=args.archive_folder,
                expunge=args.expunge,
            ),
            enabled=not args.disabled,
            username=args.username,
            ca_bundle=Path(args.ca_bundle).read_text() if args.ca_bundle else None,
        ).validate()
    except (ConfigError, ValueError, OSError) as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 2
    try:
        summary = bootstrap.mailbox_admin(_deployment(args)).add(
            config, _password(args), check=not args.no_check
        )
    except MailboxUnavailable as exc:
        print(f"pecflow: {config.address} not added: {exc} ({exc.kind})", file=sys.stderr)
        return 1
    print(f"{config.address}: added ({summary}); password stored in Secrets Manager")
    return 0


def cmd_mailbox_list(args) -> int:
    from pecflow import bootstrap

    rows = bootstrap.mailbox_admin(_deployment(args)).list()
    if args.json:
        for config, status in rows:
            item = config.to_item()
            item.pop("ca_bundle", None)
            print(json.dumps({**item, "status": status}, ensure_ascii=False, default=str))
        return 0
    if not rows:
        print("no mailboxes: add one with `pecflow mailbox add`")
        return 0
    print(f"{'MAILBOX':36s} {'ON':3s} {'IMAP':28s} {'LAST POLL':21s} {'USAGE':6s} STATUS")
    for config, status in rows:
        usage = (status.get("usage") or {}).get("percent")
        state = (
            f"error ({status.get('error_kind')}): {status.get('last_error')}"
            if status.get("last_error")
            else ("ok" if status.get("last_success_at") else "never polled")
        )
        if status.get("quarantined"):
            last = status.get("last_quarantined") or {}
            state += (
                f"; {status['quarantined']} quarantined (last: UID {last.get('uid')}, {last.get('reason')}; "
                f"see `pecflow inbox list {config.address} --quarantined`)"
            )
        print(
            f"{config.address:36s} {'yes' if config.enabled else 'no':3s} "
            f"{config.imap_host + ':' + str(config.imap_port):28s} {str(status.get('last_poll_at', '-'))[:19]:21s} "
            f"{(f'{usage:.0f}%' if usage is not None else '-'):6s} {state}"
        )
    return 0


def cmd_mailbox_enable(args) -> int:
    from pecflow import bootstrap

    try:
        bootstrap.mailbox_admin(_deployment(args)).set_enabled(args.address, args.command_name == "enable")
    except KeyError as exc:
        print(f"pecflow: {exc.args[0]}", file=sys.stderr)
        return 1
    print(f"{args.address}: {'enabled' if args.command_name == 'enable' else 'disabled'}")
    return 0


def cmd_sent_show(args) -> int:
    from pecflow import bootstrap
    from pecflow.domain import records

    message_id = args.message_id if args.message_id.startswith("<") else f"<{args.message_id}>"
    view = bootstrap.outgoing_store(_deployment(args)).view(message_id)
    if view is None:
        print(f"pecflow: no message {message_id} sent by pecflow", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(view, ensure_ascii=False, default=str))
        return 0
    print(f"{message_id}  from {view.get('mailbox')}  subject: {view.get('subject') or '-'}")
    print(f"identificativo: {view.get('identificativo') or '(no accettazione yet)'}")
    for job in view["jobs"]:
        kind = "" if job.get("certified", True) else " (external: no delivery receipt)"
        print(f"  {job['recipient']}: {job['state']}{kind}")
        for receipt in sorted(job.get("receipts", {}).values(), key=records.receipt_order):
            detail = f" — {receipt.get('error_detail')}" if receipt.get("error_detail") else ""
            print(f"      {receipt.get('at') or '?':25s} {receipt['kind']}{detail}")
    return 0


def cmd_inbox_list(args) -> int:
    from pecflow import bootstrap
    from pecflow.services.admin import inbox_kind, rem_note

    store = bootstrap.message_store(_deployment(args))
    index = "Quarantined" if args.quarantined else "Unmatched" if args.unmatched else None
    records = store.query(args.mailbox, index=index, limit=args.limit)
    if args.kind:
        records = [r for r in records if r.kind == args.kind]
    if args.json:
        for record in records:
            print(json.dumps(record.as_dict(), ensure_ascii=False, default=str))
        return 0
    for r in records:
        reference = r.ref_message_id or r.identificativo or ""
        note = f"  [{r.reconciled}]" if r.reconciled else ""
        if r.quarantined:
            note += f"  [quarantined UID {r.uid}: {r.quarantined.get('reason', '')}]"
        print(
            f"{(r.received_at or '')[:19]}  {inbox_kind(r):26s} {str(r.subject or '')[:50]:50s} "
            f"{reference}{note}"
        )
        rem = rem_note(r)
        if rem:
            print(f"{'':21s}{rem}")
    print(f"{len(records)} message(s)")
    return 0


def cmd_inbox_reindex(args) -> int:
    from pecflow import bootstrap
    from pecflow.services.inbox import reindex

    deployment = _deployment(args)
    outgoing = bootstrap.outgoing_store(deployment)

    def campaign_of(message_id: str) -> str | None:
        job = outgoing.job(message_id)
        return job.campaign_id if job is not None else None

    def progress(seen: int, added: int) -> None:
        print(
            f"\r{seen:,} message(s) read, {added:,} added to the inbox", end="", file=sys.stderr, flush=True
        )

    seen, added = reindex(
        args.mailbox,
        bootstrap.message_store(deployment).every(args.mailbox),
        bootstrap.inbox_store(deployment),
        campaign_of,
        progress,
    )
    print(file=sys.stderr)
    print(f"{args.mailbox}: {seen} message(s), {added} added to the inbox, {seen - added} were there already")
    return 0


# --- pecflow campaign validate (campaign domain: pecflow.domain.campaign) -----------------------------
_PROGRESS_SECONDS = 2.0  # how often big files report the rows read (on stderr)


def cmd_campaign_validate(args) -> int:
    import time

    from pecflow.domain import campaign

    csv_path = Path(args.csv)
    try:
        manifest = Path(args.manifest).read_bytes()
        total = csv_path.stat().st_size
    except OSError as exc:
        print(f"pecflow: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    folder = Path(args.attachments) if args.attachments else csv_path.parent / "attachments"
    if args.attachments and not folder.is_dir():
        print(f"pecflow: {folder}: not a folder", file=sys.stderr)
        return 2
    report_dir = Path(args.report_dir) if args.report_dir else csv_path.parent
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"pecflow: {report_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    shown = {"at": time.monotonic()}

    def progress(rows: int, read: int) -> None:
        now = time.monotonic()
        if now - shown["at"] >= _PROGRESS_SECONDS:
            shown["at"] = now
            print(
                f"… {rows:,} rows read ({100 * read / max(total, 1):.0f}% of {total / 1e6:,.1f} MB)",
                file=sys.stderr,
                flush=True,
            )

    limits = campaign.CsvLimits(max_bytes=int(args.max_csv_mb * 1024 * 1024))
    index = (
        campaign.SqliteAttachmentIndex.from_directory(folder)
        if folder.is_dir()
        else campaign.DictAttachmentIndex()
    )
    try:
        with csv_path.open("rb") as body:
            report = campaign.validate(manifest, body, index, limits=limits, progress=progress)
    finally:
        if isinstance(index, campaign.SqliteAttachmentIndex):
            index.close()
    with report:
        json_path = report_dir / f"{csv_path.stem}.validation.json"
        errors_path = report_dir / f"{csv_path.stem}.validation-errors.csv"
        json_path.write_text(
            json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        with errors_path.open("wb") as sink:
            report.write_errors_csv(sink)
        _print_validation(csv_path, report, args.show, json_path, errors_path)
    _print_terms(manifest, args.provider)
    return 0 if report.valid else 1


def _print_terms(manifest: bytes, preset: str | None) -> None:
    """What the sending mailbox's provider publishes about automated and mass sending."""
    from pecflow.domain.quota import SDI_TERMS, TERMS, preset_of_domain, terms_of

    try:
        mailbox = str(json.loads(manifest).get("mailbox") or "")
    except (ValueError, AttributeError):
        mailbox = ""
    guessed = preset is None
    preset = preset or preset_of_domain(mailbox)
    terms = terms_of(preset) if preset else None
    if terms is None:
        known = ", ".join(TERMS)
        print(
            f"provider terms: {'unknown for ' + repr(preset) if preset else 'not known from ' + repr(mailbox)}; "
            f"--provider {{{known}}} shows what that provider allows for automated and mass sending"
        )
        return
    how = " (from the mailbox's domain)" if guessed else ""
    print(f"provider terms — {terms.provider}, preset {preset}{how}:")
    for line in terms.terms:
        print(f"  - {line}")
    print(f"  source: {terms.source}")
    if terms.needs_agreement:
        print("  ! automated sending needs the provider's agreement: make sure it is in place before sending")
    print(f"  (invoices to the {SDI_TERMS.provider}: {'; '.join(SDI_TERMS.terms)})")


def _print_validation(csv_path: Path, report, show: int, json_path: Path, errors_path: Path) -> None:
    from pecflow.domain.campaign.recipients import ENCODING_NAMES, cut

    if report.csv_format is not None:
        delimiter = {"\t": "tab"}.get(report.delimiter, repr(report.delimiter))
        shown = ", ".join(cut(h, 40) if h else "(unnamed)" for h in report.header[:30])
        if len(report.header) > 30:
            shown += f"… ({len(report.header):,} columns)"
        print(
            f"{csv_path.name}: {report.rows:,} rows, {ENCODING_NAMES[report.encoding]}, delimiter {delimiter}, "
            f"columns: {shown}"
        )
    if report.merge_fields:
        print(f"merge fields: {', '.join(report.merge_fields)}")
    if report.valid and report.messages != report.rows:  # group_by: one message per group of rows
        print(f"VALID: {report.messages:,} messages ready, covering {report.rows:,} rows")
    elif report.valid:
        print(f"VALID: {report.rows:,} recipients ready")
    else:
        campaign_level = sum(1 for i in report.errors if i.row is None)
        print(
            f"INVALID: {report.error_count:,} error(s): {report.invalid_rows:,} row(s) with errors"
            + (f", {campaign_level} about the whole campaign" if campaign_level else "")
        )
        for code, count in sorted(report.errors_by_code.items(), key=lambda kv: -kv[1]):
            print(f"  {code:28s} {count:,}")
        print("first errors:" if report.error_count > show else "errors:")
        for issue in report.errors[:show]:
            print(f"  {issue.message}")
        if report.error_count > show:
            print(f"  ... and {report.error_count - show:,} more in {errors_path.name}")
    print(f"report: {json_path}")
    print(f"errors: {errors_path}")


def _add_campaign_parser(sub) -> argparse._SubParsersAction:
    """`pecflow campaign ...`; returns its subcommands so others (stats, export) can be added."""
    campaign = sub.add_parser(
        "campaign",
        help="campaigns: one PEC per recipient of a CSV",
        description="Check and follow campaigns (manifest.json + recipients.csv + attachments/).",
    )
    actions = campaign.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    check = actions.add_parser(
        "validate",
        help="check a campaign locally before uploading it",
        description=(
            "Run the same validation as the fan-out: the manifest, its templates, the attachments and every row "
            "of the CSV. Writes <csv>.validation.json and <csv>.validation-errors.csv (every error, for Excel) "
            "next to the CSV or in --report-dir. Exit status 0 when valid, 1 when invalid, 2 on usage errors."
        ),
    )
    check.add_argument("--manifest", required=True, metavar="M", help="the manifest.json")
    check.add_argument("--csv", required=True, metavar="C", help="the recipients CSV")
    check.add_argument(
        "--attachments",
        metavar="DIR",
        help="the attachments folder (default: attachments/ beside the CSV, when present)",
    )
    check.add_argument(
        "--report-dir", metavar="DIR", help="where the report files go (default: beside the CSV)"
    )
    check.add_argument("--show", type=int, default=20, metavar="N", help="errors printed (default 20)")
    check.add_argument(
        "--max-csv-mb",
        type=float,
        default=100,
        metavar="MB",
        help="largest CSV accepted (default 100, as the fan-out)",
    )
    check.add_argument(
        "--provider",
        metavar="PRESET",
        help="the sending mailbox's quota preset (aruba, legalmail, gmail): its terms for automated and "
        "mass sending are shown (default: guessed from the mailbox's domain)",
    )
    check.set_defaults(func=cmd_campaign_validate)
    return actions


# --- end of pecflow campaign validate ----------------------------------------------------------------


def _add_target_options(parser) -> None:
    where = parser.add_argument_group(
        "where pecflow runs (default: MAILBOXES_TABLE/STACK_NAME from the environment)"
    )
    where.add_argument("--stack", help="name of the deployed CloudFormation stack")
    where.add_argument("--region", help="AWS region of the stack")
    where.add_argument("--local", action="store_true", help="the local stack (.local-run/stack.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pecflow",
        description="Run a company's PEC (Posta Elettronica Certificata) mailboxes on AWS serverless.",
    )
    parser.add_argument("--version", action="version", version=f"pecflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    classify = sub.add_parser(
        "classify",
        help="recognise PEC messages and receipts in .eml files",
        description="Classify each message (posta-certificata, anomalia, the seven receipt kinds, "
        "posta-ordinaria, malformed) and show its PEC data. Directories are searched for "
        "*.eml files; '-' reads one message from standard input. Exit status 1 when a file "
        "cannot be read; a file that is not an e-mail is reported as 'malformed'.",
    )
    classify.add_argument("files", nargs="+", metavar="FILE", help=".eml file, directory, or '-'")
    classify.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    classify.set_defaults(func=cmd_classify)

    mailbox = sub.add_parser(
        "mailbox",
        help="configure the PEC mailboxes pecflow polls",
        description="Add, list, enable and disable mailboxes. Passwords go to "
        "AWS Secrets Manager, never to the tables or the template.",
    )
    mailbox_sub = mailbox.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    add = mailbox_sub.add_parser(
        "add",
        help="add (or update) a mailbox",
        description=(
            "Add a PEC mailbox, or update its settings. The password is read from standard input "
            "(--password-stdin), from an environment variable (--password-env), or asked for; the login "
            "is checked over IMAP before anything is saved (--no-check to skip)."
        ),
    )
    add.add_argument("address", help="the PEC address, e.g. ufficio@pec.azienda.it")
    add.add_argument("--imap-host", required=True, help="e.g. imaps.pec.aruba.it")
    add.add_argument("--imap-port", type=int, default=993, help="IMAP over TLS port (default 993)")
    add.add_argument("--smtp-host", help="SMTP over TLS host (default: the IMAP host with imap→smtp)")
    add.add_argument("--smtp-port", type=int, default=465, help="default 465")
    add.add_argument("--folder", action="append", help="folder to watch (repeatable; default INBOX)")
    add.add_argument(
        "--quota-preset",
        default="aruba",
        help="the provider's sending quota: aruba (250 per 20 minutes), gmail (100 a day), "
        "legalmail (6 a minute) or custom:N/WINDOW[,fixed], e.g. custom:50/10m (default: aruba)",
    )
    add.add_argument(
        "--saturation",
        choices=["never", "after-days", "above-quota"],
        default="never",
        help="when archived messages leave the provider (default never)",
    )
    add.add_argument("--days", type=int, default=90, help="for after-days (default 90)")
    add.add_argument("--percent", type=float, default=80.0, help="for above-quota (default 80)")
    add.add_argument("--archive-folder", default="Archivio-pecflow", help="provider folder they are moved to")
    add.add_argument("--expunge", action="store_true", help="remove them from the provider instead of moving")
    add.add_argument("--username", help="login name, when it is not the address")
    add.add_argument("--ca-bundle", help="PEM file of a private CA to trust (test servers)")
    add.add_argument("--disabled", action="store_true", help="add it without polling it yet")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    add.add_argument("--no-check", action="store_true", help="do not try to log in first")
    _add_target_options(add)
    add.set_defaults(func=cmd_mailbox_add)
    listing = mailbox_sub.add_parser("list", help="mailboxes with their last poll and errors")
    listing.add_argument("--json", action="store_true", help="one JSON object per mailbox")
    _add_target_options(listing)
    listing.set_defaults(func=cmd_mailbox_list)
    for action, text in (
        ("disable", "stop polling a mailbox (nothing is deleted)"),
        ("enable", "poll it again"),
    ):
        toggle = mailbox_sub.add_parser(action, help=text)
        toggle.add_argument("address")
        _add_target_options(toggle)
        toggle.set_defaults(func=cmd_mailbox_enable)

    sent = sub.add_parser(
        "sent",
        help="messages pecflow sent, with their receipts",
        description="The reconciled view of a message pecflow sent: each recipient's "
        "state and every receipt about it, in order.",
    )
    sent_sub = sent.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    show = sent_sub.add_parser("show", help="one sent message and its receipts")
    show.add_argument("message_id", help="its Message-ID (with or without <>)")
    show.add_argument("--json", action="store_true")
    _add_target_options(show)
    show.set_defaults(func=cmd_sent_show)

    inbox = sub.add_parser(
        "inbox",
        help="what arrived in a mailbox",
        description=(
            "Messages recorded for a mailbox, newest first; --unmatched lists receipts whose original "
            "pecflow does not know (kept, never dropped); --quarantined lists messages whose processing "
            "failed (archived, recorded as a summary with the reason)."
        ),
    )
    inbox_sub = inbox.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    listing = inbox_sub.add_parser("list", help="recorded messages, newest first")
    listing.add_argument("mailbox")
    listing.add_argument("--kind", help="only this kind (e.g. avvenuta-consegna)")
    listing.add_argument("--unmatched", action="store_true", help="only receipts matching nothing we sent")
    listing.add_argument(
        "--quarantined", action="store_true", help="only messages whose processing failed (with the reason)"
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    _add_target_options(listing)
    listing.set_defaults(func=cmd_inbox_list)
    reindex = inbox_sub.add_parser(
        "reindex",
        help="give messages recorded before the inbox existed their place in it (safe to repeat)",
    )
    reindex.add_argument("mailbox")
    _add_target_options(reindex)
    reindex.set_defaults(func=cmd_inbox_reindex)
    _add_campaign_operations(_add_campaign_parser(sub))  # pecflow campaign validate|stats|export|...
    _add_audit_parser(sub)
    _add_trust_parser(sub)
    _add_evidence_parser(sub)
    _add_conservation_parser(sub)  # pecflow conservazione export|list
    _add_users_parser(sub)
    _add_rules_parser(sub)  # pecflow rules set|show|test
    _add_alerts_parser(sub)  # pecflow alerts settings|test
    _add_invoices_parser(sub)  # pecflow invoices list|export|show|send|unmatched|retry|sdi-address
    return parser


# --- pecflow campaign stats | export | pause | resume | cancel | resend ---------------------------
def cmd_campaign_stats(args) -> int:
    from pecflow import bootstrap
    from pecflow.services.admin import STAT_LABELS

    try:
        stats = bootstrap.campaign_admin(_deployment(args)).stats(args.campaign_id)
    except KeyError as exc:
        print(f"pecflow: {exc.args[0]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, default=str))
        return 0
    print(f"Campagna {stats['campaign_id']} — {stats['status']} — da {stats['mailbox']}")
    counters, rows = stats["counters"], stats.get("rows")
    if rows:  # one message per group of rows: both counts
        print(f"  {'':48s} {'messaggi':>8s} {'righe':>8s}")
    for key, label in STAT_LABELS:
        by_row = f" {rows.get(key, 0):>8d}" if rows else ""
        print(f"  {label:48s} {counters.get(key, 0):>8d}{by_row}")
    validation = stats.get("validation") or {}
    if validation.get("error_count"):
        print(
            f"  validation: {validation['error_count']} error(s) — see validation.json in the campaign folder"
        )
    if stats.get("dead_lettered"):
        print(
            f"  {stats['dead_lettered']} job(s) stopped on the dead-letter queue (in 'Errori'): see "
            f"`pecflow campaign export` for the reason, `pecflow campaign redrive {stats['campaign_id']}` "
            "to send them again"
        )
    for problem in filter(None, [stats.get("fanout_error"), *stats.get("problems", [])]):
        print(f"  ! {problem}")
    return 0


def cmd_campaign_export(args) -> int:
    from pecflow import bootstrap
    from pecflow.domain import campaign, records

    def with_receipts(jobs):
        for job in jobs:
            receipts = sorted(job.receipts.values(), key=records.receipt_order)
            yield {
                **job.as_dict(),
                "receipts": "; ".join(f"{r.get('kind')} {r.get('at') or ''}".strip() for r in receipts),
            }

    jobs = with_receipts(bootstrap.campaign_admin(_deployment(args)).jobs(args.campaign_id))
    columns = (*campaign.EXPORT_COLUMNS, ("receipts", "receipts"))
    out = open(args.output, "wb") if args.output != "-" else sys.stdout.buffer
    try:
        count = campaign.write_export(out, jobs, columns=columns)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"{count} recipient(s) written to {args.output}", file=sys.stderr)
    return 0


def cmd_campaign_status(args) -> int:
    from pecflow import bootstrap

    admin = bootstrap.campaign_admin(_deployment(args))
    try:
        if args.command_name == "resend":
            created = admin.resend_failed(args.campaign_id, by=_operator())
            print(f"{args.campaign_id}: {created} failed recipient(s) queued again as new attempts")
        elif args.command_name == "redrive":
            done = admin.redrive(args.campaign_id, by=_operator())
            print(
                f"{args.campaign_id}: {done['redriven']} job(s) back from the dead-letter queue; "
                f"{done['queued']} job(s) still to send put back on the send queue"
            )
        else:
            status = admin.set_status(args.campaign_id, args.command_name, by=_operator())
            print(f"{args.campaign_id}: {status}")
    except (KeyError, ValueError) as exc:
        print(f"pecflow: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_campaign_upload(args) -> int:
    """Upload a campaign folder in the order the fan-out expects: attachments, CSV, manifest last
    (the manifest's arrival starts the campaign). Validated locally first unless --no-validate."""
    from pecflow.domain.campaign.manifest import CAMPAIGN_ID
    from pecflow.domain.campaign.validation import local_files

    folder = Path(args.folder)
    manifest, recipients = folder / "manifest.json", folder / "recipients.csv"
    attachments = folder / "attachments"
    # what a symbolic link points to is never uploaded: links are refused before anything else
    refused = [
        f"{p.name} is a symbolic link: put the file itself in the campaign folder"
        for p in (manifest, recipients)
        if p.is_symlink()
    ]
    files: list[str] = []
    if attachments.is_symlink():
        refused.append("attachments is a symbolic link: put the folder itself in the campaign folder")
    elif attachments.is_dir():
        for name, _, problem in sorted(local_files(attachments), key=lambda entry: entry[0]):
            if problem:
                refused.append(f"attachments/{name} {problem}")
            else:
                files.append(name)
    if refused:
        print(
            "pecflow: not uploaded: only the files themselves can be uploaded (pecflow never uploads what a "
            "symbolic link points to)",
            file=sys.stderr,
        )
        for reason in refused[:20]:
            print(f"  {reason}", file=sys.stderr)
        if len(refused) > 20:
            print(f"  ... and {len(refused) - 20:,} more", file=sys.stderr)
        return 1
    missing = [str(p) for p in (manifest, recipients) if not p.is_file()]
    if missing:
        print(f"pecflow: the campaign folder needs {' and '.join(missing)}", file=sys.stderr)
        return 2
    campaign_id = args.campaign_id or folder.resolve().name
    if not CAMPAIGN_ID.match(campaign_id):
        print(
            f"pecflow: {campaign_id!r} is not a usable campaign id (letters, digits, . _ -; at most 64)",
            file=sys.stderr,
        )
        return 2
    if not args.no_validate:
        check = argparse.Namespace(
            manifest=str(manifest),
            csv=str(recipients),
            attachments=None,
            report_dir=None,
            show=args.show,
            max_csv_mb=100,
            provider=None,
        )
        if cmd_campaign_validate(check) != 0:
            print(
                "pecflow: not uploaded: fix the errors above (the report is beside the CSV)", file=sys.stderr
            )
            return 1
    deployment = _deployment(args)
    if not deployment.campaign_bucket:
        print("pecflow: this deployment has no campaign bucket", file=sys.stderr)
        return 2
    from pecflow import bootstrap

    package = bootstrap.campaign_files(deployment, campaign_id)
    if package.exists("manifest.json"):
        print(
            f"pecflow: campaign {campaign_id} already exists: choose another id (--campaign-id)",
            file=sys.stderr,
        )
        return 1
    uploads = [(attachments / name, "attachments/" + name) for name in files]
    uploads += [(recipients, "recipients.csv"), (manifest, "manifest.json")]  # the manifest starts it
    for n, (path, name) in enumerate(uploads, 1):
        package.upload_file(name, path)
        if n % 50 == 0 or n == len(uploads):
            print(f"  uploaded {n}/{len(uploads)} files", file=sys.stderr)
    print(
        f"campaign {campaign_id} uploaded to s3://{deployment.campaign_bucket}/{package.prefix}: it starts now; "
        f"follow it with `pecflow campaign stats {campaign_id}`"
    )
    return 0


def _add_campaign_operations(actions) -> None:
    upload = actions.add_parser(
        "upload",
        help="upload a campaign folder and start it",
        description=(
            "Validate a campaign folder (manifest.json, recipients.csv, attachments/) as the fan-out will, "
            "then upload it to the campaign bucket: attachments first, the CSV, the manifest last (its "
            "arrival starts the campaign)."
        ),
    )
    upload.add_argument("folder", help="the campaign folder")
    upload.add_argument("--campaign-id", help="the campaign's id (default: the folder's name)")
    upload.add_argument("--no-validate", action="store_true", help="skip the local validation")
    upload.add_argument("--show", type=int, default=20, help="validation errors printed (default 20)")
    _add_target_options(upload)
    upload.set_defaults(func=cmd_campaign_upload)
    stats = actions.add_parser(
        "stats",
        help="the statistics panel of a campaign",
        description=(
            "Totals of a campaign: to send, sent, only sent, accepted, accepted and delivered, delivery "
            "failures, errors, waiting for confirmation. Kept atomically as receipts arrive."
        ),
    )
    stats.add_argument("campaign_id")
    stats.add_argument("--json", action="store_true")
    _add_target_options(stats)
    stats.set_defaults(func=cmd_campaign_stats)
    export = actions.add_parser("export", help="per-recipient outcome as CSV (opens safely in Excel)")
    export.add_argument("campaign_id")
    export.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    _add_target_options(export)
    export.set_defaults(func=cmd_campaign_export)
    for action, text in (
        ("pause", "stop sending (queued jobs wait)"),
        ("resume", "send again after a pause"),
        ("cancel", "send nothing more (what was sent stays sent)"),
        ("resend", "a new attempt for every recipient whose delivery failed"),
        (
            "redrive",
            "send again the jobs stopped on the dead-letter queue (and any job "
            "still to send that has left the queue)",
        ),
    ):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("campaign_id")
        _add_target_options(parser)
        parser.set_defaults(func=cmd_campaign_status)
    trial = actions.add_parser(
        "test-send",
        help="send one row (or group) of a campaign folder to an address of yours, before the real run",
        description=(
            "Render row N of the campaign folder exactly as the campaign would (with group_by: the message of "
            "the group holding row N), and send it from the campaign's mailbox, within its quota, to the "
            "address given alone: never to the row's recipient, without the campaign's cc, the subject marked "
            "[PROVA]. Its receipts are reconciled as any message's (pecflow sent show MESSAGE-ID); it is never "
            "counted in a campaign's statistics."
        ),
    )
    trial.add_argument("folder", help="the campaign folder (manifest.json, recipients.csv, attachments/)")
    trial.add_argument("--row", type=int, required=True, metavar="N",
                       help="the CSV row as the spreadsheet numbers it (the header is row 1)")  # fmt: skip
    trial.add_argument("--to", required=True, metavar="ADDRESS", help="the PEC address the test goes to")
    trial.add_argument("--campaign-id", help="the campaign's id (default: the folder's name)")
    _add_target_options(trial)
    trial.set_defaults(func=cmd_campaign_test_send)


def cmd_campaign_test_send(args) -> int:
    from pecflow import bootstrap
    from pecflow.adapters.campaign_files import CampaignFolder
    from pecflow.services.campaign_tests import TestSendError

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"pecflow: {folder}: not a folder", file=sys.stderr)
        return 2
    campaign_id = args.campaign_id or folder.resolve().name
    try:
        sent = bootstrap.campaign_tests(_deployment(args)).send(
            CampaignFolder(folder), campaign_id=campaign_id, row=args.row, to=args.to, by=_operator()
        )
    except (TestSendError, ValueError) as exc:
        print(f"pecflow: not sent: {exc}", file=sys.stderr)
        return 1
    covered = f"rows {', '.join(map(str, sent.rows))}" if len(sent.rows) > 1 else f"row {sent.rows[0]}"
    print(
        f"test of {covered} queued from {sent.mailbox} to {sent.to} (subject '[PROVA] {sent.subject}'); "
        f"follow it with `pecflow sent show '{sent.message_id}'`"
    )
    return 0


# --- pecflow audit ---------------------------------------------------------------------------------
def cmd_audit_verify(args) -> int:
    from pecflow import bootstrap

    verdict = bootstrap.audit_log(_deployment(args)).verify(args.mailbox)
    if verdict.ok:
        print(f"{args.mailbox}: the audit log is whole ({verdict.checked} event(s) checked)")
        return 0
    print(
        f"{args.mailbox}: the audit log is BROKEN at event {verdict.broken_at}: {verdict.reason}\n"
        f"  the {verdict.checked} event(s) before it are whole",
        file=sys.stderr,
    )
    return 1


def _date(text: str):
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_audit_export(args) -> int:
    from datetime import timedelta

    from pecflow import bootstrap

    end = None
    if args.to_text:
        try:
            end = _date(args.to_text)
        except argparse.ArgumentTypeError as exc:
            print(f"pecflow: --to: {exc}", file=sys.stderr)
            return 2
        if len(args.to_text) == 10:  # a day: the whole of it
            end += timedelta(days=1) - timedelta(microseconds=1)
    out = open(args.output, "wb") if args.output != "-" else sys.stdout.buffer
    try:
        count = bootstrap.audit_log(_deployment(args)).export(
            args.mailbox, out, start=args.start, end=end, fmt=args.format
        )
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"{count} audit event(s) written to {args.output}", file=sys.stderr)
    return 0


def _add_audit_parser(sub) -> None:
    audit = sub.add_parser(
        "audit",
        help="check and export a mailbox's audit log (who viewed, replied, deleted what and when)",
        description="Every act of a person on a mailbox is an audit event chained by hash to the one "
        "before it: a changed, removed or reordered event breaks the chain.",
    )
    actions = audit.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    check = actions.add_parser("verify", help="check the chain; names the first broken event (exit 1)")
    check.add_argument("mailbox", metavar="MAILBOX")
    _add_target_options(check)
    check.set_defaults(func=cmd_audit_verify)
    export = actions.add_parser("export", help="the events of a period as CSV (Excel-safe) or JSON lines")
    export.add_argument("mailbox", metavar="MAILBOX")
    export.add_argument("--from", dest="start", type=_date, metavar="DATE", help="first day (YYYY-MM-DD)")
    export.add_argument("--to", dest="to_text", metavar="DATE", help="last day, included (YYYY-MM-DD)")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    _add_target_options(export)
    export.set_defaults(func=cmd_audit_export)


# --- pecflow trust ---------------------------------------------------------------------------------
def _trust_location(args) -> tuple[str, object]:
    from pecflow.adapters.trust import anchors_location

    if args.bundle:
        return args.bundle, None
    config = _deployment(args)
    location = anchors_location(config.trust_anchors, config.archive_bucket)
    if not location:
        raise SystemExit("pecflow: no trust bundle: give --bundle FILE, or a stack (--stack, --local)")
    return location, config.client("s3") if location.startswith("s3://") else None


def cmd_trust_import(args) -> int:
    from pecflow.adapters.trust import read_bundle, write_bundle
    from pecflow.pec.signature import TrustAnchors, read_certificates

    location, s3 = _trust_location(args)
    added = []
    for name in args.files:
        try:
            with open(name, "rb") as handle:
                added.extend(read_certificates(handle.read()))
        except (OSError, ValueError) as exc:
            print(f"pecflow: {name}: {exc}", file=sys.stderr)
            return 1
    current = TrustAnchors()
    if not args.replace:
        try:
            data = read_bundle(location, s3)
            current = TrustAnchors.read(data) if data is not None else current
        except ValueError as exc:
            print(
                f"pecflow: {location} cannot be read: {exc} (--replace starts a new bundle)", file=sys.stderr
            )
            return 1
    merged = current.merged(added)
    write_bundle(location, merged, s3)
    print(f"{len(merged) - len(current)} certificate(s) added, {len(merged)} in {location}")
    print("the pollers read it at their next cold start", file=sys.stderr)
    return 0


def cmd_trust_list(args) -> int:
    from pecflow.adapters.trust import load_anchors

    location, s3 = _trust_location(args)
    anchors = load_anchors(location, s3)
    if anchors.problem:
        print(f"{location}: {anchors.problem}", file=sys.stderr)
        return 1
    for cert in anchors.certificates:
        print(
            f"{cert.subject.rfc4514_string()}  (issuer {cert.issuer.rfc4514_string()}; "
            f"serial {cert.serial_number:x}; valid {cert.not_valid_before_utc.date()} to {cert.not_valid_after_utc.date()})"
        )
    print(f"{len(anchors)} trust anchor(s) in {location}", file=sys.stderr)
    return 0


def _add_trust_parser(sub) -> None:
    trust = sub.add_parser(
        "trust",
        help="the certificates providers' signatures must chain to (the trust anchors)",
        description="Received messages are checked against these anchors: a signature that matches "
        "but chains to none of them is 'untrusted'. Import AgID's CA certificate, or AgID's list of "
        "the PEC providers' certificates (an LDIF export of the providers' index, or an XML list whose "
        "...Certificate elements hold base64 DER), or any PEM/DER certificate. The stack keeps the bundle in its archive bucket "
        "(trust/anchors.pem, every earlier version kept).",
    )
    actions = trust.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import", help="add the certificates of PEM, DER, XML or LDIF files to the bundle"
    )
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--replace", action="store_true", help="the bundle becomes these certificates only")
    imp.set_defaults(func=cmd_trust_import)
    listing = actions.add_parser("list", help="the trust anchors in the bundle")
    listing.set_defaults(func=cmd_trust_list)
    for parser in (imp, listing):
        parser.add_argument("--bundle", metavar="FILE", help="a bundle file instead of the stack's")
        _add_target_options(parser)


# --- pecflow evidence -----------------------------------------------------------------------------
def cmd_evidence(args) -> int:
    if args.what[0] == "verify":
        if len(args.what) != 2:
            print(
                "pecflow: evidence verify takes one pack: pecflow evidence verify PACK.zip", file=sys.stderr
            )
            return 2
        return cmd_evidence_verify(args.what[1], args)
    if len(args.what) != 2 or not args.output:
        print("pecflow: write `pecflow evidence MAILBOX SHA256 -o PACK.zip` "
              "or `pecflow evidence verify PACK.zip`", file=sys.stderr)  # fmt: skip
        return 2
    mailbox, sha256 = args.what
    return cmd_evidence_pack(mailbox, sha256, args)


def cmd_evidence_pack(mailbox: str, sha256: str, args) -> int:
    import dataclasses
    import os

    from pecflow import bootstrap
    from pecflow.domain.access import NotVisible
    from pecflow.services.evidence import EvidenceError
    from pecflow.services.inbox import Source

    config = _deployment(args)
    if args.tsa or args.tsa_anchors:
        config = dataclasses.replace(
            config, tsa_url=args.tsa or config.tsa_url, tsa_anchors=args.tsa_anchors or config.tsa_anchors
        )
    packs = bootstrap.evidence_packs(config)
    if packs.timestamper is None:
        print("pecflow: no time-stamping authority (--tsa URL, or TSA_URL): the pack will have no "
              "time-stamp and `evidence verify` will say so", file=sys.stderr)  # fmt: skip
    partial = f"{args.output}.partial"
    try:
        with open(partial, "wb") as out:
            built = packs.write(
                mailbox.lower(), sha256.lower(), out, actor=_operator(), source=Source(client="pecflow-cli")
            )
        os.replace(partial, args.output)
    except (NotVisible, EvidenceError) as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 1
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    stamped = (
        f"time-stamped {built.stamp.at.isoformat()} by {built.stamp.tsa}"
        if built.stamp
        else "NOT time-stamped"
    )
    print(f"{args.output}: {len(built.entries)} file(s), {built.receipts} receipt(s), manifest {stamped}")
    return 0


def cmd_evidence_verify(path: str, args) -> int:
    """Offline: the pack and the anchors given, nothing else (no stack, no AWS)."""
    import zipfile

    from pecflow.domain import evidence_verify
    from pecflow.pec.signature import TrustAnchors, read_certificates

    try:
        providers = TrustAnchors.read(Path(args.anchors).read_bytes(), args.anchors) if args.anchors else None
        tsa = read_certificates(Path(args.tsa_anchors).read_bytes()) if args.tsa_anchors else None
    except (OSError, ValueError) as exc:
        print(f"pecflow: the anchors cannot be read: {exc}", file=sys.stderr)
        return 2
    try:
        with zipfile.ZipFile(path) as zf:
            report = evidence_verify.verify(zf, provider_anchors=providers, tsa_anchors=tsa)
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"pecflow: {path} non è un fascicolo leggibile: {exc}", file=sys.stderr)
        return 1
    for verdict in report.verdicts:
        print(f"{'OK     ' if verdict.ok else 'ERRORE '} {verdict.path}: {verdict.words}")
    for note in report.notes:
        print(f"Nota: {note}")
    if report.ok:
        print(
            f"ESITO: il fascicolo è integro e tutte le verifiche sono superate ({len(report.verdicts)} controlli)."
        )
        return 0
    print(f"ESITO: il fascicolo NON supera la verifica: {len(report.failures())} controllo/i non superato/i.")
    return 1


def _add_evidence_parser(sub) -> None:
    evidence = sub.add_parser(
        "evidence",
        help="a message's evidence pack (fascicolo probatorio), and its offline check",
        usage="pecflow evidence MAILBOX SHA256 -o PACK.zip [--tsa URL] [--stack|--local]\n"
        "       pecflow evidence verify PACK.zip [--anchors PEM] [--tsa-anchors PEM]",
        description="MAILBOX SHA256 -o PACK.zip writes the pack of one message: the .eml as archived, "
        "every receipt's .eml, the daticert, a timeline, the audit trail, a summary in Italian (PDF) "
        "and a manifest of SHA-256 hashes time-stamped by an RFC 3161 authority. `verify PACK.zip` "
        "checks a pack offline (no account, no AWS): every hash, the providers' signatures, the "
        "time-stamp; exit status 0 only when everything holds.",
    )
    evidence.add_argument("what", nargs="+", metavar="MAILBOX SHA256 | verify PACK")
    evidence.add_argument("-o", "--output", metavar="PACK.zip", help="where to write the pack")
    evidence.add_argument("--tsa", metavar="URL", help="the time-stamping authority (default: TSA_URL)")
    evidence.add_argument(
        "--anchors",
        metavar="PEM",
        help="verify: the providers' certificates to trust (default: those in the pack)",
    )
    evidence.add_argument(
        "--tsa-anchors", metavar="PEM", help="the TSA's CA certificate(s) (verify default: those in the pack)"
    )
    _add_target_options(evidence)
    evidence.set_defaults(func=cmd_evidence)


# --- pecflow conservazione ------------------------------------------------------------------------
def cmd_conservation_export(args) -> int:
    import os

    from pecflow import bootstrap
    from pecflow.services.conservation import ConservationError
    from pecflow.services.evidence import EvidenceError
    from pecflow.services.inbox import Source

    if not args.continue_ and not args.first:
        print(
            "pecflow: indicare --from AAAA-MM-GG, oppure --continue (give --from, or --continue)",
            file=sys.stderr,
        )
        return 2
    if args.continue_ and args.first:
        print(
            "pecflow: --from e --continue si escludono (--continue starts after the last export)",
            file=sys.stderr,
        )
        return 2
    exports = bootstrap.conservation_exports(_deployment(args))
    partial = f"{args.output}.partial"
    try:
        with open(partial, "wb") as out:
            built = exports.write(
                args.mailbox.lower(), out, first=args.first, last=args.last, continue_=args.continue_,
                actor=_operator(), source=Source(client="pecflow-cli"),
            )  # fmt: skip
        os.replace(partial, args.output)
    except (ConservationError, EvidenceError) as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 1
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    print(
        f"{args.output}: pacchetto di versamento {built.period} di {args.mailbox.lower()}: "
        f"{built.documents} documento/i ({built.sent} inviato/i, {built.receipts} ricevuta/e), "
        f"SHA-256 {built.sha256}; periodo registrato come esportato"
    )
    for note in built.notes:
        print(note)
    return 0


def cmd_conservation_list(args) -> int:
    from datetime import date

    from pecflow import bootstrap
    from pecflow.domain import conservation

    done = bootstrap.conservation_exports(_deployment(args)).recorded(args.mailbox.lower())
    if args.json:
        print(json.dumps(done, ensure_ascii=False, default=str))
        return 0
    if not done:
        print(f"{args.mailbox.lower()}: nessun periodo esportato")
        return 0
    for p in done:
        print(f"{p['first']} – {p['last']}  {p['documents']:>6} documento/i  {p['created_at']}  {p['created_by']}  "
              f"{p['filename']}  SHA-256 {p['package_sha256']}")  # fmt: skip
    periods = [
        conservation.Period(date.fromisoformat(p["first"]), date.fromisoformat(p["last"])) for p in done
    ]
    for gap in conservation.gaps(periods):
        print(gap)
    return 0


def cmd_conservation_verify(args) -> int:
    """Offline: the package and nothing else (no stack, no AWS)."""
    import zipfile

    from pecflow.domain import conservation

    try:
        with zipfile.ZipFile(args.package) as zf:
            check = conservation.verify_package(zf)
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"pecflow: {args.package} non è un pacchetto leggibile: {exc}", file=sys.stderr)
        return 1
    for problem in check.problems:
        print(f"ERRORE  {problem}")
    if check.ok:
        print(f"ESITO: il pacchetto è integro: {check.documents} documento/i, {check.files} file con l'impronta "
              "dell'indice, indice e metadati conformi agli schemi.")  # fmt: skip
        return 0
    print(f"ESITO: il pacchetto NON supera la verifica: {len(check.problems)} problema/i.")
    return 1


def _add_conservation_parser(sub) -> None:
    parser = sub.add_parser(
        "conservazione",
        help="export a mailbox's periods for conservation (pacchetto di versamento)",
        description="`export MAILBOX --from AAAA-MM-GG --to AAAA-MM-GG -o pdv.zip` writes the pacchetto di "
        "versamento of the period (Italian days): every message and receipt recorded in it, byte for byte "
        "as archived, with its AgID metadata (Allegato 5) and a UNI SInCRO index (IdC.xml) with every "
        "file's SHA-256; the period is then recorded as exported. A period overlapping one already "
        "exported is refused; `--continue` starts the day after the last export. `list MAILBOX` shows "
        "the exported periods and any gap between them; `verify PDV.zip` checks a package offline.",
    )
    actions = parser.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the package of a period")
    export.add_argument("mailbox")
    export.add_argument("--from", dest="first", metavar="AAAA-MM-GG", help="the first day")
    export.add_argument(
        "--to", dest="last", metavar="AAAA-MM-GG", required=True, help="the last day, included"
    )
    export.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="from the day after the last exported period",
    )
    export.add_argument("-o", "--output", metavar="PDV.zip", required=True, help="where to write the package")
    _add_target_options(export)
    export.set_defaults(func=cmd_conservation_export)
    verify = actions.add_parser("verify", help="check a package offline: index, hashes, metadata")
    verify.add_argument("package", metavar="PDV.zip")
    verify.set_defaults(func=cmd_conservation_verify)
    listing = actions.add_parser("list", help="the periods exported so far")
    listing.add_argument("mailbox")
    listing.add_argument("--json", action="store_true")
    _add_target_options(listing)
    listing.set_defaults(func=cmd_conservation_list)


# --- pecflow users --------------------------------------------------------------------------------
def _operator() -> str:
    """Who acts through the CLI (with the stack's AWS credentials), for the audit log."""
    import getpass
    import socket

    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def _people_call(args, change):
    from pecflow import bootstrap
    from pecflow.adapters.cognito import DirectoryError
    from pecflow.services.people import PeopleError

    try:
        return change(bootstrap.people_admin(_deployment(args)))
    except (PeopleError, DirectoryError) as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return None


def _role(text: str):
    from pecflow.domain.access import Role

    try:
        return Role(text.strip().lower())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a role is one of {', '.join(r.value for r in Role)}"
        ) from None


def _mailbox_role(text: str):
    mailbox, sep, role = text.rpartition("=")
    if not sep or not mailbox:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write MAILBOX=ROLE, e.g. ufficio@pec.azienda.it=operator"
        )
    return mailbox, _role(role)


def _describe(person) -> str:
    state = "" if person.enabled else "  [disabled]"
    roles = ", ".join(f"{m} {r.value}" for m, r in sorted(person.roles.items())) or "no mailbox"
    return f"{person.username:20} {person.email:32} {person.name or '-':24} {roles}{state}"


def cmd_users_add(args) -> int:
    def add(people):
        person = people.add(_operator(), args.username, args.email, args.name or "")
        for mailbox, role in args.role or []:
            person = people.set_role(_operator(), person.username, mailbox, role)
        return person

    person = _people_call(args, add)
    if person is None:
        return 1
    print(_describe(person))
    if _deployment(args).user_pool_id:
        print(f"an invitation with a temporary password was sent to {person.email}")
    else:
        print("note: this installation has no user pool: no sign-in account was made", file=sys.stderr)
    return 0


def cmd_users_list(args) -> int:
    found = _people_call(args, lambda people: people.people(args.mailbox))
    if found is None:
        return 1
    if args.json:
        import json

        for p in found:
            print(json.dumps({"username": p.username, "email": p.email, "name": p.name, "enabled": p.enabled,
                              "roles": {m: r.value for m, r in p.roles.items()}}, ensure_ascii=False))  # fmt: skip
        return 0
    for person in found:
        print(_describe(person))
    print(f"{len(found)} person(s)" if found else "nobody yet: pecflow users add USERNAME --email ADDRESS")
    return 0


def cmd_users_enable(args) -> int:
    person = _people_call(args, lambda people: people.set_enabled(_operator(), args.username, args.enable))
    if person is None:
        return 1
    print(_describe(person))
    return 0


def cmd_users_role(args) -> int:
    role = getattr(args, "role", None)
    person = _people_call(
        args, lambda people: people.set_role(_operator(), args.username, args.mailbox, role)
    )
    if person is None:
        return 1
    print(_describe(person))
    return 0


def _add_users_parser(sub) -> None:
    users = sub.add_parser(
        "users",
        help="people (one account each) and their role on each mailbox",
        description="Roles: viewer (list, read, download), operator (+ take in charge, reply, forward), "
        "manager (+ assign, campaigns), admin (+ delete and restore, people and roles, rules).",
    )
    actions = users.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add a person (and their sign-in account, with an e-mailed invitation)"
    )
    add.add_argument("username", metavar="USERNAME")
    add.add_argument("--email", required=True)
    add.add_argument("--name", help="full name, as colleagues see it")
    add.add_argument("--role", action="append", type=_mailbox_role, metavar="MAILBOX=ROLE",
                     help="a role on a mailbox (repeat for several)")  # fmt: skip
    add.set_defaults(func=cmd_users_add)
    listing = actions.add_parser("list", help="people and their roles")
    listing.add_argument("--mailbox", help="only the people with a role on this mailbox")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_users_list)
    for action, enable, text in (("disable", False, "refuse every sign-in and request of a person"),
                                 ("enable", True, "let a disabled person in again")):  # fmt: skip
        toggle = actions.add_parser(action, help=text)
        toggle.add_argument("username", metavar="USERNAME")
        toggle.set_defaults(func=cmd_users_enable, enable=enable)
    grant = actions.add_parser("grant", help="give (or change) a person's role on a mailbox")
    grant.add_argument("username", metavar="USERNAME")
    grant.add_argument("mailbox", metavar="MAILBOX")
    grant.add_argument("role", type=_role, metavar="ROLE", help="viewer, operator, manager or admin")
    grant.set_defaults(func=cmd_users_role)
    revoke = actions.add_parser("revoke", help="take a person's role on a mailbox away")
    revoke.add_argument("username", metavar="USERNAME")
    revoke.add_argument("mailbox", metavar="MAILBOX")
    revoke.set_defaults(func=cmd_users_role)
    for parser in (add, listing, grant, revoke, *(actions.choices[a] for a in ("disable", "enable"))):
        _add_target_options(parser)


# --- pecflow rules --------------------------------------------------------------------------------
def _period(text: str):
    """'30d', '12h', '2w' -> a timedelta."""
    from datetime import timedelta

    units = {"h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: scrivi un periodo come 30d, 12h o 2w")
    return timedelta(**{units[unit]: int(number)})


def _rules_call(args, call):
    from pecflow.domain.access import DisabledPerson, Forbidden, NotVisible
    from pecflow.domain.rules import RulesError

    try:
        return call()
    except RulesError as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
    except (KeyError, NotVisible, Forbidden, DisabledPerson) as exc:
        print(f"pecflow: {exc.args[0] if exc.args else exc}", file=sys.stderr)
    return None


def cmd_rules_set(args) -> int:
    from pecflow import bootstrap
    from pecflow.domain.rules import RulesError, parse_text

    try:
        document = parse_text(Path(args.file).read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"pecflow: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"pecflow: {args.file}: {exc}", file=sys.stderr)
        return 1
    desk = bootstrap.rules_desk(_deployment(args))
    done = _rules_call(args, lambda: desk.set(None, args.mailbox, dict(document.source), actor=_operator()))
    if done is None:
        return 1
    formats = ", ".join(sorted(done.accepted.allow)) if done.accepted else "tutti"
    print(
        f"Regole di {args.mailbox.lower()} salvate: {len(done.rules)} regole, formati accettati: {formats}."
    )
    print("Le caselle le applicano ai messaggi che arrivano da ora (entro un minuto).")
    return 0


def cmd_rules_show(args) -> int:
    from pecflow import bootstrap

    data = bootstrap.rules_desk(_deployment(args)).show(None, args.mailbox)
    if data is None:
        print(f"La casella {args.mailbox.lower()} non ha regole.")
        return 0
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    try:
        import yaml  # type: ignore[import-untyped]

        print(yaml.safe_dump(data, allow_unicode=True, sort_keys=False).rstrip())
    except ImportError:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_rules_test(args) -> int:
    import time

    from pecflow import bootstrap
    from pecflow.adapters.rules import RecordedMessages
    from pecflow.domain import clock
    from pecflow.domain.rules import RulesError, load, parse_text
    from pecflow.services.rules import dry_run

    config = _deployment(args)
    try:
        if args.file:
            document = parse_text(Path(args.file).read_text(encoding="utf-8"))
        else:
            data = bootstrap.rules_desk(config).show(None, args.mailbox)
            if data is None:
                print(f"La casella {args.mailbox.lower()} non ha regole: prova un file con --file.")
                return 1
            document = load(data)
    except (OSError, RulesError) as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 1
    since = clock.iso(clock.now() - args.since)
    records = RecordedMessages(config.messages_table, config.resource("dynamodb"))
    started = time.monotonic()
    seen = matched = 0
    by_rule: dict[str, int] = {}
    for trial in dry_run(document, records.since(args.mailbox, since), mailbox=args.mailbox):
        seen += 1
        if not trial.decisions:
            continue
        matched += 1
        if args.quiet:
            continue
        print(f"{trial.received_at[:19]}  {trial.kind:20s} {trial.sender[:40]:40s} {trial.subject[:50]}")
        for decision in trial.decisions:
            by_rule[decision.rule] = by_rule.get(decision.rule, 0) + 1
            print(f"    «{decision.rule}»: {'; '.join(decision.actions.describe())}")
        for would in trial.would:  # what an auto-reply or a PDF would be, for this message
            print(f"      {would}")
    elapsed = time.monotonic() - started
    print(
        f"Prova senza effetti su {seen} messaggi dal {since[:10]}: {matched} toccati dalle regole "
        f"({elapsed:.1f} s, {records.reads} letture DynamoDB). Nulla è stato salvato, etichettato, assegnato o inviato."
    )
    for rule, count in by_rule.items():
        print(f"  «{rule}»: {count} messaggi")
    return 0


def _add_rules_parser(sub) -> None:
    rules = sub.add_parser(
        "rules",
        help="a mailbox's automatic rules and accepted formats",
        description="Rules run on each message once it is archived and recorded; they never delete "
        "and never expunge. The document's schema: schemas/rules.schema.json.",
    )
    actions = rules.add_subparsers(dest="action", metavar="ACTION")
    put = actions.add_parser("set", help="check and store a mailbox's rules (YAML or JSON)")
    put.add_argument("mailbox", metavar="MAILBOX")
    put.add_argument("file", metavar="RULES_FILE")
    put.set_defaults(func=cmd_rules_set)
    show = actions.add_parser("show", help="a mailbox's rules as stored")
    show.add_argument("mailbox", metavar="MAILBOX")
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")
    show.set_defaults(func=cmd_rules_show)
    trial = actions.add_parser("test", help="what the rules would do on recorded messages (a dry run)")
    trial.add_argument("mailbox", metavar="MAILBOX")
    trial.add_argument(
        "--since", type=_period, default=_period("30d"), help="period back from now: 30d, 12h, 2w"
    )
    trial.add_argument("--file", metavar="RULES_FILE", help="try a file instead of the stored rules")
    trial.add_argument("--quiet", action="store_true", help="only the totals")
    trial.set_defaults(func=cmd_rules_test)
    for parser in (put, show, trial):
        _add_target_options(parser)


# --- pecflow alerts -------------------------------------------------------------------------------
def cmd_alerts_settings(args) -> int:
    from pecflow import bootstrap

    settings = bootstrap.alert_settings(_deployment(args))
    if args.to_handle_hours is not None or args.unmatched_hours is not None:
        current = settings.get(args.mailbox)
        settings.set(
            args.mailbox,
            to_handle_hours=args.to_handle_hours or current.get("to_handle_hours"),
            unmatched_hours=args.unmatched_hours or current.get("unmatched_hours"),
        )
    from pecflow.services.alerts import TO_HANDLE_HOURS, UNMATCHED_HOURS

    current = settings.get(args.mailbox)
    print(
        f"{args.mailbox}: avviso se un messaggio resta «da gestire» più di "
        f"{current.get('to_handle_hours') or TO_HANDLE_HOURS:g} ore, se una ricevuta resta senza "
        f"messaggio corrispondente più di {current.get('unmatched_hours') or UNMATCHED_HOURS:g} ore"
    )
    return 0


def cmd_alerts_test(args) -> int:
    from pecflow import bootstrap

    failures: list[str] = []
    alerts = bootstrap.alerts(_deployment(args), on_failure=failures.append)
    if alerts is None:
        print("pecflow: this installation has no alerts (AlertsTopicArn): update the stack", file=sys.stderr)
        return 2
    # a cause of its own would need its own words; a rule's notice reads right for a test
    try:
        alerts.notify(["prova"], args.mailbox, {"subject": "Avviso di prova di pecflow"}, "prova")
    except RuntimeError as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 1
    print("avviso di prova pubblicato sul topic degli avvisi (e sul webhook della chat, se configurato)")
    return 0


def _add_alerts_parser(sub) -> None:
    alerts = sub.add_parser(
        "alerts",
        help="grouped alerts to the alarms topic and the chat webhook (README: Avvisi)",
        description="Alerts go to the alarms topic (e-mail subscribers) and the chat webhook whose URL "
        "is in the stack's alerts webhook secret; never through a PEC mailbox.",
    )
    actions = alerts.add_subparsers(dest="action", metavar="ACTION")
    settings = actions.add_parser("settings", help="a mailbox's alert thresholds (shown, or set)")
    settings.add_argument("mailbox", metavar="MAILBOX")
    settings.add_argument("--to-handle-hours", type=float, help="hours a message may stay «da gestire»")
    settings.add_argument("--unmatched-hours", type=float, help="hours a receipt may stay unmatched")
    settings.set_defaults(func=cmd_alerts_settings)
    trial = actions.add_parser("test", help="publish a test alert (check the e-mail and the chat)")
    trial.add_argument("mailbox", metavar="MAILBOX")
    trial.set_defaults(func=cmd_alerts_test)
    for parser in (settings, trial):
        _add_target_options(parser)


# --- invoices ----------------------------------------------------------------------------------------
def _invoice_filter(args):
    from pecflow.domain.invoices import InvoiceFilter

    try:
        return InvoiceFilter(args.direction, args.since, args.until, args.state, args.supplier)
    except ValueError as exc:
        raise SystemExit(f"pecflow: {exc}") from None


def _invoices_desk(args):
    from pecflow import bootstrap

    config = _deployment(args)
    if not config.invoices_table:
        raise SystemExit("pecflow: questa installazione non ha la tabella delle fatture (InvoicesTable)")
    return bootstrap.invoice_desk(config)


def cmd_invoices_list(args) -> int:
    found = _invoices_desk(args).find(args.mailbox, _invoice_filter(args))
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2, default=str))
        return 0
    if not found:
        print(f"Nessuna fattura in {args.mailbox.lower()} con questi filtri.")
        return 0
    for item in found:
        party = item.get("supplier_name") if item.get("direction") == "passive" else item.get("customer_name")
        deadline = item.get("deadline") or {}
        due = f"  entro {deadline['by']}: {deadline.get('what')}" if deadline.get("by") else ""
        print(
            f"{str(item.get('data') or '?'):10s} {'ricevuta' if item.get('direction') == 'passive' else 'inviata':8s} "
            f"{str(item.get('state')):18s} {str(item.get('nome_file')):32s} n. {str(item.get('numero') or '?'):12s} "
            f"{str(item.get('totale') or '?'):>12s} {item.get('divisa') or ''}  {str(party or '')[:40]}{due}"
        )
    print(f"{len(found)} fatture.")
    return 0


def cmd_invoices_export(args) -> int:
    text = _invoices_desk(args).export(args.mailbox, _invoice_filter(args))
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    # utf-8 with BOM: Excel opens accented names right
    Path(args.output).write_text(text, encoding="utf-8-sig", newline="")
    print(f"Fatture esportate in {args.output} ({max(text.count(chr(10)) - 1, 0)} righe).")
    return 0


def cmd_invoices_show(args) -> int:
    from pecflow.services.invoices import InvoiceError

    try:
        item = _invoices_desk(args).show(args.mailbox, args.nome_file)
    except InvoiceError as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(item, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_invoices_send(args) -> int:
    from pecflow.services.invoices import InvoiceError

    try:
        content = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"pecflow: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        sent = _invoices_desk(args).send(args.mailbox, Path(args.file).name, content, by=_operator())
    except InvoiceError as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 1
    if sent.new:
        print(f"Fattura {sent.nome_file} in invio allo SdI ({sent.to}) da {args.mailbox.lower()}.")
    else:
        print(f"Fattura {sent.nome_file} già inviata (stato: {sent.state}): non parte una seconda volta.")
    print(
        f"Message-ID {sent.message_id}: ricevute con `pecflow sent show`, stato con `pecflow invoices show`."
    )
    return 0


def cmd_invoices_unmatched(args) -> int:
    found = _invoices_desk(args).unmatched(args.mailbox)
    if not found:
        print("Nessuna notifica SdI in attesa della sua fattura.")
        return 0
    for entry in found:
        print(
            f"{str(entry.get('received_at'))[:19]}  {entry.get('type'):3s} {entry.get('filename')}  "
            f"NomeFile {entry.get('nome_file') or '-'}  IdentificativoSdI {entry.get('identificativo_sdi') or '-'}"
        )
    print(f"{len(found)} notifiche non collegate: `pecflow invoices retry` le riprova.")
    return 0


def cmd_invoices_retry(args) -> int:
    linked, left = _invoices_desk(args).retry(args.mailbox)
    print(f"Notifiche collegate ora: {linked}; ancora senza fattura: {left}.")
    return 0


def cmd_invoices_sdi_address(args) -> int:
    from pecflow.services.invoices import InvoiceError

    desk = _invoices_desk(args)
    if args.address:
        try:
            desk.set_sdi_address(args.mailbox, args.address)
        except InvoiceError as exc:
            print(f"pecflow: {exc}", file=sys.stderr)
            return 1
    print(f"Le fatture di {args.mailbox.lower()} vanno allo SdI a {desk.sdi_address(args.mailbox)}.")
    return 0


def _add_invoices_parser(sub) -> None:
    from pecflow.domain.invoices import STATES

    invoices = sub.add_parser(
        "invoices",
        help="SdI e-invoices: received (passive) and sent (active), their states and deadlines",
        description="Invoices received by PEC are stored under fatture/ and listed here; invoices sent "
        "with `send` follow the SdI's notifications (RC, NS, MC, NE, DT, AT, EC, SE, MT).",
    )
    actions = invoices.add_subparsers(dest="action", metavar="ACTION")

    def filters(parser) -> None:
        parser.add_argument("mailbox", metavar="MAILBOX")
        parser.add_argument("--from", dest="since", metavar="AAAA-MM-GG", help="invoice date from")
        parser.add_argument("--to", dest="until", metavar="AAAA-MM-GG", help="invoice date to (inclusive)")
        parser.add_argument("--state", choices=STATES, help="only invoices in this state")
        parser.add_argument("--supplier", help="supplier's VAT number or part of its name")
        parser.add_argument(
            "--direction", choices=("passive", "active"), help="passive: received; active: sent"
        )

    listing = actions.add_parser("list", help="invoices, newest invoice date first")
    filters(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_invoices_list)
    export = actions.add_parser("export", help="invoices as CSV (';'-separated) for a spreadsheet")
    filters(export)
    export.add_argument("-o", "--output", default="fatture.csv", help="file to write ('-': standard output)")
    export.set_defaults(func=cmd_invoices_export)
    show = actions.add_parser("show", help="one invoice: its fields, state, deadline and history")
    show.add_argument("mailbox", metavar="MAILBOX")
    show.add_argument("nome_file", metavar="FILE_NAME")
    show.set_defaults(func=cmd_invoices_show)
    send = actions.add_parser("send", help="send an invoice file (.xml or .xml.p7m) to the SdI by PEC")
    send.add_argument("mailbox", metavar="MAILBOX")
    send.add_argument("file", metavar="INVOICE_FILE")
    send.set_defaults(func=cmd_invoices_send)
    unmatched = actions.add_parser("unmatched", help="SdI notifications no invoice was found for yet")
    unmatched.add_argument("mailbox", metavar="MAILBOX")
    unmatched.set_defaults(func=cmd_invoices_unmatched)
    retry = actions.add_parser("retry", help="try the unmatched notifications again")
    retry.add_argument("mailbox", metavar="MAILBOX")
    retry.set_defaults(func=cmd_invoices_retry)
    address = actions.add_parser("sdi-address", help="the SdI's PEC address invoices are sent to")
    address.add_argument("mailbox", metavar="MAILBOX")
    address.add_argument("address", nargs="?", help="set it (default sdi01@pec.fatturapa.it)")
    address.set_defaults(func=cmd_invoices_sdi_address)
    for parser in (listing, export, show, send, unmatched, retry, address):
        _add_target_options(parser)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from pecflow.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"pecflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
