"""Worst-case cost of classifying hostile messages: seconds and memory per MB of input.

A sender controls every byte of a message. The corpus here is made by pecflow's own code
(hand-written MIME, and local.pecbuild.builder for receipts and envelopes): the parser's known
weak spots pushed to sizes where super-linear work shows (punycode text, MIME bombs wide
and deep, megabytes of encoded words, folded headers, nested comments in addresses,
RFC 2231 continuations, daticert.xml in odd encodings, regex-backtracking shapes, many
header fields, huge lines, boundary look-alikes, SdI and p7m attachments).

Each case runs in a child process, so a runaway case is killed after the timeout (shown as
"> T s (timeout)", its memory read from /proc before the kill) and memory is measured per
case. The child reads the input, classifies a small message first (lazy imports are not
charged to the case), resets its peak RSS (/proc/self/clear_refs, where the kernel allows)
and then times what `pecflow classify --json` does: `message.classify`, `to_dict` and the
JSON line encoded to UTF-8, plus `body_text()`. Interpreter start-up, imports and reading
the input are not counted. Memory is the peak RSS during that work (VmHWM) minus the RSS
before it. A case that raises is reported as CRASH with its timing.

Ratios are per MB of input (MB = 2**20 bytes); inputs under 1 MB are charged as 1 MB, so
timer and allocator noise on tiny inputs does not turn into large ratios (their absolute
seconds are in the table). Last line: the worst ratios over every case (target 0.5 s/MB,
20 MB/MB). `--package-path` measures another copy of the core package (e.g. an older
checkout's shared/ folder) with the same corpus.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20
FLOOR_MB = 1.0
TARGET_S, TARGET_M = 0.5, 20.0

HEAD = (
    b"From: mittente@pec.esempio.it\r\nTo: dest@pec.esempio.it\r\nSubject: prova\r\n"
    b"Date: Mon, 02 Mar 2026 10:30:00 +0100\r\nMessage-ID: <hostile@pec.esempio.it>\r\n"
    b"MIME-Version: 1.0\r\n"
)
RECEIPT = (
    b"From: posta-certificata@pec.esempio.it\r\nTo: mittente@pec.esempio.it\r\n"
    b"Subject: ACCETTAZIONE: prova\r\nDate: Mon, 02 Mar 2026 10:30:00 +0100\r\n"
    b"Message-ID: <ricevuta@pec.esempio.it>\r\nX-Ricevuta: accettazione\r\n"
    b"X-Riferimento-Message-ID: <hostile@pec.esempio.it>\r\nMIME-Version: 1.0\r\n"
)
WHEN = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def _fill(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


# --- the cases: name -> function(size in bytes) -> message bytes -----------------------------
def punycode_text(size):
    # a receipt without daticert: its text is read for the identificativo. Valid punycode,
    # every "a" one more insertion: Python's decoder is quadratic in them
    return RECEIPT + b"Content-Type: text/plain; charset=punycode\r\n\r\n-" + b"a" * size


def punycode_in_anomalia(size):
    from local.pecbuild import builder

    inner = RECEIPT + b"Content-Type: text/plain; charset=punycode\r\n\r\n-" + b"a" * size
    return builder.busta_anomalia(inner, gestore=builder.SIMULATO, data=WHEN, motivo="non certificato")


def mime_bomb(size):
    # 1,000 multiparts of 1,000 empty parts each at full size
    width = max(10, int((size / 9) ** 0.5))
    inner = b"".join(b"--i\r\n\r\n" for _ in range(width)) + b"--i--\r\n"
    child = b"Content-Type: multipart/mixed; boundary=i\r\n\r\n" + inner
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=o\r\n\r\n"
        + b"".join(b"--o\r\n" + child for _ in range(width))
        + b"--o--\r\n"
    )


def named_parts(size):
    # an envelope whose postacert.eml holds the most parts read, each named, with encoded
    # words and RFC 2231 parameters, and .xml files looked at as possible SdI files
    leaf = (
        b'Content-Type: application/xml; name="=?utf-8?q?f=C3=A9?=.xml"; charset=utf-8\r\n'
        b"Content-Disposition: attachment; filename*=utf-8''f%C3%A9.xml\r\n\r\n<a/>\r\n"
    )
    group = (
        b"Content-Type: multipart/mixed; boundary=g\r\n\r\n"
        + b"".join(b"--g\r\n" + leaf for _ in range(999))
        + b"--g--\r\n"
    )
    count = max(1, min(11, size // len(group)))
    inner = (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=i\r\n\r\n"
        + b"".join(b"--i\r\n" + group for _ in range(count))
        + b"--i--\r\n"
    )
    return (
        b"From: posta-certificata@pec.esempio.it\r\nX-Trasporto: posta-certificata\r\n"
        b"Subject: POSTA CERTIFICATA: x\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
        b'Content-Type: message/rfc822; name="postacert.eml"\r\n\r\n' + inner + b"\r\n--o--\r\n"
    )


def many_parameters(size):
    # parts whose header fields hold as many short parameters as are read
    field = b"; a=b" * 1000
    part = (
        b"Content-Type: text/plain"
        + field
        + b"\r\nContent-Disposition: attachment"
        + field
        + b"\r\n\r\nx\r\n"
    )
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=p\r\n\r\n"
        + b"".join(b"--p\r\n" + part for _ in range(max(1, size // len(part))))
        + b"--p--\r\n"
    )


def tiny_fields_in_parts(size):
    # parts whose headers hold as many one-letter fields as are kept for one entity
    part = b"a:\n" * 2000 + b"\nx\n"
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=f\r\n\r\n"
        + b"".join(b"--f\n" + part for _ in range(max(1, size // len(part))))
        + b"--f--\n"
    )


def encoded_word_names(size):
    # parts named with as many short encoded words as fit in a header field
    name = b"=?a?q?b?=" * 20_000
    part = b'Content-Type: application/pdf; name="' + name + b'"\r\n\r\nx\r\n'
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=w\r\n\r\n"
        + b"".join(b"--w\r\n" + part for _ in range(max(1, size // len(part))))
        + b"--w--\r\n"
    )


def deep_multipart(size):
    levels = []
    n = 0
    total = 0
    while total < size:
        level = b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n)
        levels.append(level)
        total += len(level)
        n += 1
    return HEAD + b"".join(levels) + b"\r\ntext\r\n"


def deep_messages(size):
    # postacert.eml inside postacert.eml ... each level an envelope, 7bit
    level = (
        b"From: posta-certificata@pec.esempio.it\r\nX-Trasporto: posta-certificata\r\n"
        b"Subject: POSTA CERTIFICATA: x\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
        b'Content-Type: message/rfc822; name="postacert.eml"\r\n'
        b'Content-Disposition: attachment; filename="postacert.eml"\r\n\r\n'
    )
    return level * max(1, size // len(level)) + b"Subject: fine\r\n\r\nfine\r\n"


def base64_messages(size):
    # each level a message/rfc822 part in base64 holding the next: 3/4 of the size per level
    raw = HEAD + b"\r\n" + _fill(b"x" * 75 + b"\r\n", size // 8)
    while len(raw) < size:
        raw = (
            HEAD + b"X-Trasporto: posta-certificata\r\n"
            b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
            b'Content-Type: message/rfc822; name="postacert.eml"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(raw) + b"\r\n--z--\r\n"
        )
    return raw


def qp_messages(size):
    # quoted-printable nesting: a level decodes to nearly its own size
    raw = HEAD + b"\r\n" + _fill(b"y" * 70 + b"\r\n", size)
    for level in range(9):
        raw = (
            HEAD + b"X-Trasporto: posta-certificata\r\n"
            b"Content-Type: multipart/mixed; boundary=q%d\r\n\r\n--q%d\r\n"
            b'Content-Type: message/rfc822; name="postacert.eml"\r\n'
            b"Content-Transfer-Encoding: quoted-printable"
            b"\r\n\r\n%s\r\n--q%d--\r\n" % (level, level, raw.replace(b"=", b"=3D"), level)
        )
    return raw


def encoded_words_subject(size):
    return b"From: a@b.it\r\nSubject: " + _fill(b"=?utf-8?q?a=C3=A9?= ", size) + b"\r\n\r\nbody\r\n"


def encoded_words_unclosed(size):
    return b"From: a@b.it\r\nSubject: " + _fill(b"=?utf-8?q?a", size) + b"\r\n\r\nbody\r\n"


def utf7_surrogate_subject(size):
    subject = b"Subject: =?utf-7?Q?+2D0-?= " + _fill(b"=?utf-7?B?K0FHRS0=?= ", size)
    return HEAD.replace(b"Subject: prova", subject) + b"\r\nbody\r\n"


def folded_header(size):
    return RECEIPT + b"Subject: start\r\n" + _fill(b" more\r\n", size) + b"\r\nbody\r\n"


def many_header_fields(size):
    return _fill(b"X-A: b\r\n", size) + RECEIPT + b"\r\nbody\r\n"


def from_parentheses(size):
    count = min(100_000, size)
    return (
        b"From: "
        + b"(" * count
        + b"a@b.it\r\nTo: "
        + b"(" * count
        + b"c@d.it\r\n"
        + RECEIPT[RECEIPT.index(b"Subject") :]
        + b"\r\n"
        + _fill(b"pad\r\n", size - 2 * count)
    )


def address_slow_shapes(size):
    # the address reader at its slowest: values read token by token, up to its budget
    field = b"@" * 200_000
    return (
        RECEIPT.replace(b"To: mittente@pec.esempio.it", b"To: " + field + b"\r\nCc: " + b"<" * 200_000)
        + b"Reply-To: "
        + b",".join([b"a.b.c" * 40] * 1000)
        + b"\r\n\r\n"
        + _fill(b"pad\r\n", size)
    )


def many_recipients(size):
    names = b", ".join(b'"Rossi, Mario %d" <m%d@pec.esempio.it>' % (i, i) for i in range(size // 40))
    return HEAD.replace(b"To: dest@pec.esempio.it", b"To: " + names) + b"\r\nbody\r\n"


def many_to_fields(size):
    # To fields full of the shortest addresses, as many fields as are kept
    field = b"To: " + b"a@b," * 60_000 + b"\r\n"
    return HEAD + field * max(1, min(size // len(field), 30)) + b"\r\nbody\r\n"


def rfc2231_continuations(size):
    pieces = b"".join(b";\r\n filename*%d*=%%C3%%A9" % i for i in range(size // 20))
    return (
        HEAD + b"Content-Type: multipart/mixed; boundary=r\r\n\r\n--r\r\n"
        b"Content-Type: application/octet-stream; name*0*=punycode''abc" + pieces + b"\r\n"
        b"Content-Disposition: attachment" + pieces + b"\r\n\r\ndata\r\n--r--\r\n"
    )


def params_backtracking(size):
    return (
        HEAD
        + b"Content-Type: multipart/mixed;"
        + b" " * (size // 3)
        + b";x"
        + b" " * (size // 3)
        + b"; boundary="
        + b"\t" * (size // 3)
        + b"\r\n\r\nbody\r\n"
    )


def address_backtracking(size):
    return (
        RECEIPT.replace(b"To: mittente@pec.esempio.it", b"To: a@b" + b" " * (size // 2) + b"x").replace(
            b"From: posta-certificata@pec.esempio.it", b"From: " + b" " * (size // 2) + b"x@y z"
        )
        + b"\r\nbody\r\n"
    )


def on_behalf_backtracking(size):
    display = b"Per conto di: a" + b" " * size + b"b"
    return (
        b'From: "' + display + b'" <posta-certificata@pec.esempio.it>\r\n'
        b"X-Trasporto: posta-certificata\r\nSubject: POSTA CERTIFICATA: x\r\n\r\nbody\r\n"
    )


def carriage_returns(size):
    # a folded field made of CRs: the unfolding must not rescan the run
    return RECEIPT + b"Subject: a" + b"\r" * size + b"b\r\n c\r\n\r\nbody\r\n"


def long_line_body(size):
    return RECEIPT + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + _fill(b"\xe2\x82\xac", size)


def boundary_lookalikes(size):
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
        + _fill(b"--bx\r\n", size)
        + b"--b--\r\n"
    )


def no_blank_line(size):
    return HEAD + _fill(b"X", size)


def header_lookalike_lines(size):
    return HEAD + _fill(b"Received: from x\r\n", size)


def daticert(encoding: str):
    def build(size):
        from local.pecbuild import builder

        original = builder.messaggio_originale(
            mittente="mittente@pec.esempio.it",
            destinatari=["dest@pec.esempio.it"],
            oggetto="prova",
            testo="testo\n",
            message_id="<hostile@pec.esempio.it>",
            data=WHEN,
        )
        raw = builder.ricevuta(
            "accettazione",
            original,
            gestore=builder.SIMULATO,
            identificativo="opec.1@pec.simulato.test",
            data=WHEN,
        )
        start = raw.index(b"daticert.xml")
        start = raw.index(b"\r\n\r\n", start) + 4
        end = raw.index(b"\r\n--", start)
        xml = base64.b64decode(raw[start:end])
        declared = xml.replace(b'encoding="UTF-8"', b'encoding="%s"' % encoding.encode())
        try:
            body = declared.decode("utf-8").encode(encoding)
        except LookupError:
            body = declared
        return raw[:start] + base64.encodebytes(body).replace(b"\n", b"\r\n") + raw[end:]

    return build


def daticert_control_characters(size):
    # the largest daticert.xml read, full of characters XML does not allow: the tolerant pass
    raw = daticert("utf-8")(size)
    start = raw.index(b"daticert.xml")
    start = raw.index(b"\r\n\r\n", start) + 4
    end = raw.index(b"\r\n--", start)
    xml = base64.b64decode(raw[start:end])
    room = 256 * 1024 - len(xml)
    xml = xml.replace(b"<oggetto>prova", b"<oggetto>" + _fill(b"\x01&#1;\x1f", room))
    return raw[:start] + base64.encodebytes(xml).replace(b"\n", b"\r\n") + raw[end:]


def sdi_invoice(size):
    nodes = b"<Altro><x/></Altro>" * max(1, min(size, 4_500_000) // 19)
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?><p:FatturaElettronica versione="FPR12" xmlns:p="x">'
        b"<FatturaElettronicaHeader><CedentePrestatore>"
        + nodes
        + b"</CedentePrestatore><CessionarioCommittente/></FatturaElettronicaHeader>"
        + b"<FatturaElettronicaBody/>" * 1000
        + b"</p:FatturaElettronica>"
    )
    return _sdi_envelope(("IT01234567890_00001.xml", "application/xml", xml), "sdi", 2)


def _sdi_envelope(attachment: tuple[str, str, bytes], name: str, number: int) -> bytes:
    """An SdI file as it arrives: attached to a certified message, in its busta di trasporto."""
    from local.pecbuild import builder

    original = builder.messaggio_originale(
        mittente="sdi01@pec.fatturapa.it",
        destinatari=["dest@pec.esempio.it"],
        oggetto="Fattura",
        testo="fattura\n",
        allegati=[attachment],
        message_id=f"<{name}@pec.fatturapa.it>",
        data=WHEN,
    )
    return builder.busta_trasporto(
        original,
        gestore=builder.SIMULATO,
        identificativo=f"opec.{number}@pec.simulato.test",
        data=WHEN,
        destinatari=[builder.Destinatario("dest@pec.esempio.it")],
    )


def p7m_indefinite(size):
    # BER, indefinite lengths: digestAlgorithms holding empty SEQUENCEs (each read the general
    # way), then an eContent split in one-byte chunks
    empties = b"\x31\x80" + b"\x30\x00" * (size // 4) + b"\x00\x00"
    chunks = b"\x24\x80" + b"\x04\x01x" * (size // 6) + b"\x00\x00"
    body = (
        b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80\x30\x80\x02\x01\x01"
        + empties
        + b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01\xa0\x80"
        + chunks
        + b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    )
    return _sdi_envelope(("IT01234567890_00001.xml.p7m", "application/pkcs7-mime", body), "p7m", 3)


# (name, builder, full size in bytes)
CASES = [
    ("punycode text part", punycode_text, 2 * MB),
    ("punycode in anomalia envelope", punycode_in_anomalia, 2 * MB),
    ("MIME bomb 1000x1000", mime_bomb, 9 * MB),
    ("named parts, up to the part budget", named_parts, 2 * MB),
    ("many short parameters", many_parameters, 4 * MB),
    ("tiny header fields in many parts", tiny_fields_in_parts, 8 * MB),
    ("encoded words naming many parts", encoded_word_names, 8 * MB),
    ("deep multipart nesting", deep_multipart, 5 * MB),
    ("deep postacert.eml nesting", deep_messages, 5 * MB),
    ("base64 message/rfc822 nesting", base64_messages, 8 * MB),
    ("quoted-printable nesting", qp_messages, 8 * MB),
    ("encoded words in Subject", encoded_words_subject, 14 * MB),
    ("unclosed encoded words", encoded_words_unclosed, 14 * MB),
    ("utf-7 surrogate subject", utf7_surrogate_subject, 1 * MB),
    ("folded header", folded_header, 50 * MB),
    ("many header fields", many_header_fields, 16 * MB),
    ("From with 100,000 '('", from_parentheses, 1 * MB),
    ("slow address shapes", address_slow_shapes, 1 * MB),
    ("many quoted recipients", many_recipients, 8 * MB),
    ("To fields of short addresses", many_to_fields, 7 * MB),
    ("RFC 2231 continuations", rfc2231_continuations, 4 * MB),
    ("parameter backtracking", params_backtracking, 3 * MB),
    ("address backtracking", address_backtracking, 1 * MB),
    ("on-behalf backtracking", on_behalf_backtracking, 1 * MB),
    ("carriage-return run", carriage_returns, 1 * MB),
    ("20 MB single-line body", long_line_body, 20 * MB),
    ("boundary look-alikes", boundary_lookalikes, 20 * MB),
    ("no blank line", no_blank_line, 20 * MB),
    ("header look-alike lines", header_lookalike_lines, 20 * MB),
    ("daticert in utf-7", daticert("utf-7"), 0),
    ("daticert in utf-32", daticert("utf-32"), 0),
    ("daticert in shift_jis", daticert("shift_jis"), 0),
    ("daticert in unknown encoding", daticert("x-no-such"), 0),
    ("daticert of control characters", daticert_control_characters, 0),
    ("SdI invoice of 200,000 nodes", sdi_invoice, 4 * MB),
    ("p7m of many BER elements", p7m_indefinite, 1 * MB),
]


# --- the child: one case, measured ------------------------------------------------------------
WARM_UP = (
    RECEIPT + b"Content-Type: multipart/mixed; boundary=w\r\n\r\n--w\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nIdentificativo del messaggio: x@y\r\n--w\r\n"
    b'Content-Type: application/xml; name="daticert.xml"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    + base64.encodebytes(b'<?xml version="1.0"?><postacert tipo="accettazione"><dati/></postacert>')
    + b"--w--\r\n"
)


def _status(field: str, pid: str = "self") -> int | None:
    """A kB figure from /proc/<pid>/status (None where there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def child(path: str) -> None:
    from pecflow.pec import message

    message.classify(WARM_UP).to_dict()
    raw = Path(path).read_bytes()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    baseline = _status("VmRSS")
    print(json.dumps({"baseline_kb": baseline}), flush=True)
    error = kind = None
    start = time.perf_counter()
    try:
        result = message.classify(raw)
        kind = result.kind
        json.dumps({"file": path, **result.to_dict()}, ensure_ascii=False).encode("utf-8")
        result.body_text()
    except Exception as exc:  # noqa: BLE001 - reported, it is what the bench looks for
        error = f"{type(exc).__name__}: {str(exc)[:60]}"
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_kb": peak, "kind": kind, "error": error}), flush=True)


# --- the parent ---------------------------------------------------------------------------------
def run_case(raw: bytes, package: Path, timeout: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".eml", delete=False) as handle:
        handle.write(raw)
    env = {**os.environ, "PYTHONPATH": str(package)}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", handle.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout + 5)  # + start-up and warm-up
        timed_out = False
    except subprocess.TimeoutExpired:
        hwm = _status("VmHWM", str(proc.pid))
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    finally:
        os.unlink(handle.name)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    baseline = lines[0]["baseline_kb"] if lines else None
    if timed_out or len(lines) < 2:
        peak = hwm if timed_out else None
        why = "timeout" if timed_out else (err.strip().splitlines() or ["no output"])[-1][:60]
        return {
            "timeout": timed_out,
            "seconds": timeout if timed_out else None,
            "error": why,
            "peak_mb": (peak - baseline) / 1024 if peak and baseline else None,
            "kind": None,
        }
    done = lines[1]
    peak = (done["peak_kb"] - baseline) / 1024 if done["peak_kb"] and baseline else None
    return {
        "timeout": False,
        "seconds": done["seconds"],
        "peak_mb": peak,
        "kind": done["kind"],
        "error": done["error"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (whole run under 30 s)")
    parser.add_argument(
        "--timeout", type=float, help="seconds per case before it is killed (default 60; quick 5)"
    )
    parser.add_argument(
        "--package-path",
        type=Path,
        default=REPO / "shared",
        help="folder holding the pecflow package to measure (default: this checkout's)",
    )
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path[:0] = [str(REPO), str(REPO / "shared")]  # the corpus is built with this checkout's builder
    scale = 1 / 16 if args.quick else 1.0
    timeout = args.timeout or (5.0 if args.quick else 60.0)
    package = args.package_path.resolve()
    print(
        f"pecflow package: {package}; timeout {timeout:.0f} s per case; "
        f"ratios charge inputs under {FLOOR_MB:.0f} MB as {FLOOR_MB:.0f} MB"
    )
    print(
        f"{'case':32s} {'input MB':>8s} {'seconds':>17s} {'s/MB':>7s} {'peak MB':>8s} {'MB/MB':>6s}  result"
    )
    worst_s = worst_m = 0.0
    timed_out = False
    crashed = []
    for name, build, full in CASES:
        if args.only and args.only.lower() not in name.lower():
            continue
        raw = build(int(full * scale))
        size_mb = len(raw) / MB
        charged = max(size_mb, FLOOR_MB)
        res = run_case(raw, package, timeout)
        del raw
        if res["timeout"]:
            seconds_txt = f"> {timeout:.0f} s (timeout)"
            s_ratio = timeout / charged
            result = "TIMEOUT"
        elif res["seconds"] is None:
            seconds_txt, s_ratio, result = "-", 0.0, f"CHILD DIED {res['error']}"
            crashed.append(name)
        else:
            seconds_txt = f"{res['seconds']:.3f}"
            s_ratio = res["seconds"] / charged
            result = res["kind"] if res["error"] is None else f"CRASH {res['error']}"
            if res["error"] is not None:
                crashed.append(name)
        m_ratio = (res["peak_mb"] or 0.0) / charged
        if s_ratio > worst_s or (s_ratio == worst_s and res["timeout"]):
            worst_s, timed_out = s_ratio, res["timeout"]  # a timeout's ratio is a lower bound
        worst_m = max(worst_m, m_ratio)
        peak_txt = f"{res['peak_mb']:.1f}" if res["peak_mb"] is not None else "-"
        s_txt = (">" if res["timeout"] else "") + f"{s_ratio:.3f}"
        print(
            f"{name:32s} {size_mb:8.2f} {seconds_txt:>17s} {s_txt:>7s} {peak_txt:>8s} {m_ratio:6.1f}"
            f"  {result}",
            flush=True,
        )
    if crashed:
        print(f"crashed: {', '.join(crashed)}")
    print(
        f"hostile: {'>' if timed_out else ''}{worst_s:.2f} s/MB, {worst_m:.1f} MB/MB "
        f"(target {TARGET_S} s/MB, {TARGET_M:.0f} MB/MB)"
    )


if __name__ == "__main__":
    main()
