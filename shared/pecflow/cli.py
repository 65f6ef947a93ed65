"""The `pecflow` command."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from pecflow import __version__


def _classify_files(paths: list[str]):
    """(display name, result or None, read error or None) per input, directories walked for *.eml."""
    from pecflow import message

    for name in paths:
        if name == "-":
            yield "-", message.classify(sys.stdin.buffer.read()), None
            continue
        path = Path(name)
        targets = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".msg", ".txt")) \
            if path.is_dir() else [path]
        for target in targets:
            try:
                raw = target.read_bytes()
            except OSError as exc:
                yield str(target), None, f"cannot read: {exc.strerror or exc}"
                continue
            yield str(target), message.classify(raw), None


def cmd_classify(args) -> int:
    failed = 0
    rows = []
    for name, result, error in _classify_files(args.files):
        if error is not None:
            failed += 1
            record = {"file": name, "kind": None, "ref_message_id": None, "receipt_type": None,
                      "provider": None, "sdi": None, "problems": [error]}
        else:
            record = {"file": name, **result.to_dict()}
        if args.json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            rows.append(record)
    if not args.json:
        _print_table(rows)
    if failed:
        print(f"pecflow: {failed} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _print_table(rows: list[dict]) -> None:
    columns = [("FILE", lambda r: Path(r["file"]).name), ("KIND", lambda r: r["kind"] or "(unreadable)"),
               ("TYPE", lambda r: r["receipt_type"] or ""), ("PROVIDER", lambda r: r["provider"] or ""),
               ("SDI", lambda r: (r["sdi"] or {}).get("type") or ""),
               ("REFERENCE", lambda r: r["ref_message_id"] or r.get("identificativo") or ""),
               ("PROBLEMS", lambda r: "; ".join(r["problems"]))]
    table = [[str(get(r)) for _, get in columns] for r in rows]
    width = shutil.get_terminal_size((160, 20)).columns
    caps = [34, 26, 10, 20, 4, 40, 200]
    sizes = [min(cap, max([len(h)] + [len(row[i]) for row in table])) for i, ((h, _), cap) in
             enumerate(zip(columns, caps))]

    def fmt(cells):
        out = "  ".join(c[:s - 1] + "…" if len(c) > s else c.ljust(s) for c, s in zip(cells, sizes))
        return out[:width].rstrip()

    print(fmt([h for h, _ in columns]))
    for row in table:
        print(fmt(row))
    kinds_seen: dict[str, int] = {}
    for r in rows:
        kinds_seen[r["kind"] or "(unreadable)"] = kinds_seen.get(r["kind"] or "(unreadable)", 0) + 1
    summary = ", ".join(f"{k}: {n}" for k, n in sorted(kinds_seen.items(), key=lambda kv: -kv[1]))
    print(f"\n{len(rows)} message(s) — {summary}" if rows else "no messages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pecflow",
        description="Run a company's PEC (Posta Elettronica Certificata) mailboxes on AWS serverless.")
    parser.add_argument("--version", action="version", version=f"pecflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    classify = sub.add_parser(
        "classify", help="recognise PEC messages and receipts in .eml files",
        description="Classify each message (posta-certificata, anomalia, the seven receipt kinds, "
                    "posta-ordinaria, malformed) and show its PEC data. Directories are searched for "
                    "*.eml files; '-' reads one message from standard input. Exit status 1 when a file "
                    "cannot be read; a file that is not an e-mail is reported as 'malformed'.")
    classify.add_argument("files", nargs="+", metavar="FILE", help=".eml file, directory, or '-'")
    classify.add_argument("--json", action="store_true",
                          help="one JSON object per line instead of a table")
    classify.set_defaults(func=cmd_classify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
