"""Names from outside never choose where a file goes: path traversal, absolute paths, NUL and
line breaks in a campaign's per-recipient attachment column, in a rule's `save` folder and the
attachment names it saves under, and in an evidence pack's member names. Archives are never
unpacked on the way in (a zip bomb attached to a PEC is stored and classified as it is), and a
forged evidence pack's small members are read within a bound.

Symbolic links in a campaign's attachments folder: tests/unit/test_campaign_hostile.py. There is
no conservation export yet: when one is added, its names belong here."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.pecbuild.builder import messaggio_originale
from pecflow.domain import evidence as pack
from pecflow.domain import evidence_verify, rules
from pecflow.domain.campaign import DictAttachmentIndex, Manifest, validate
from pecflow.domain.campaign.manifest import attachment_name_problem
from pecflow.pec import message

HOSTILE_NAMES = ["../../etc/passwd", "/etc/passwd", "a/../../b.pdf", "..", ".", "a\x00.pdf", "a\r\nb.pdf",
                 "C:\\Windows\\win.ini", "..\\..\\x.pdf", "a//b.pdf", "./a.pdf", "a/./b.pdf"]  # fmt: skip


def _safe_key(key: str) -> bool:
    parts = key.split("/")
    return not key.startswith("/") and ".." not in parts and "" not in parts and all(c >= " " for c in key)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_per_recipient_attachment_outside_the_folder_is_a_bad_row(name):
    assert attachment_name_problem(name) is not None
    manifest = Manifest.from_dict({"mailbox": "u@pec.it", "subject": "x", "body_text": "{{ nome }}",
                                   "attachment_column": "allegato"})  # fmt: skip
    cell = '"' + name.replace('"', '""') + '"'
    csv = f"Nome;PEC;Allegato\r\nMario;mario@pec.it;{cell}\r\n".encode()
    index = DictAttachmentIndex({"passwd": 10, "b.pdf": 10, "x.pdf": 10, "a.pdf": 10, "win.ini": 10})
    with validate(manifest, io.BytesIO(csv), index) as report:
        assert not report.valid and report.messages == 0, report.errors


@pytest.mark.parametrize("prefix", ["../fuori", "/assoluto", "a/../b", "a//b", "a/./b", "archivio\n", "a\x00b",
                                    "archivio\r\nx", ".nascosto", "a\\b"], ids=repr)  # fmt: skip
def test_a_save_folder_outside_the_mailboxs_place_is_refused(prefix):
    document = {"version": 1, "rules": [{"name": "salva", "then": {"save": {"prefix": prefix}}}]}
    with pytest.raises(rules.RulesError, match="prefix"):
        rules.load(document)


@settings(max_examples=200, deadline=None)
@given(sender=st.text(max_size=80), filename=st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=80)))
def test_the_folders_and_names_a_rule_saves_under_stay_inside_it(sender, filename):
    save = rules.Save("archivio/pec", "by-sender")
    record = {"sha256": "ab" * 32, "from": sender, "received_at": "2026-03-02T10:00:00Z"}
    folder = rules.save_folder(save, record)
    name = rules.safe_name(filename, "allegato-1")
    assert folder.startswith("archivio/pec/") and _safe_key(folder), folder
    assert "/" not in name and "\\" not in name and name not in (".", "..") and _safe_key(name), name


@settings(max_examples=200, deadline=None)
@given(kind=st.text(max_size=40), key=st.text(max_size=80), n=st.integers(0, 999))
def test_evidence_pack_members_are_named_by_us(kind, key, n):
    receipt = pack.receipt_path(n, kind, "cd" * 32)
    sent = pack.sent_path(n, key)
    for path in (receipt, sent, pack.xml_path(receipt, "daticert")):
        assert _safe_key(path) and "\\" not in path, path


def _bomb(size: int) -> bytes:
    """A zip of `size` zero bytes, deflated to about a thousandth, inside another zip."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * size)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("dentro.zip", inner.getvalue())
    return outer.getvalue()


def test_a_zip_bomb_attached_to_a_message_is_never_unpacked():
    bomb = _bomb(64 * 1024 * 1024)
    raw = messaggio_originale(mittente="x@pec.evil.test", destinatari=["u@pec.it"], oggetto="fattura",
                              testo="allegato\n", allegati=[("fattura.zip", "application/zip", bomb)])  # fmt: skip
    tracemalloc.start()
    try:
        found = message.classify(raw)
        formats = [rules.attachment_format({"filename": a.filename, "format": rules.sniff(a.content())})
                   for a in found.attachments]  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert formats == ["zip"]
    assert peak < 16 * len(raw) + 8 * 1024 * 1024, f"{peak:,} bytes for a {len(raw):,}-byte message"


def test_a_forged_evidence_pack_with_a_bomb_for_a_time_stamp_is_refused_within_a_bound():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(pack.MANIFEST, b'{"files": []}')
        z.writestr(pack.TOKEN, b"\0" * (64 * 1024 * 1024))
        z.writestr(pack.TSA_ANCHORS, b"\0" * (64 * 1024 * 1024))
    tracemalloc.start()
    try:
        with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
            report = evidence_verify.verify(zf)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"{peak:,} bytes"
    token = [v for v in report.verdicts if v.path == pack.TOKEN]
    assert token and not token[0].ok and "troppo grande" in token[0].words, report.verdicts
