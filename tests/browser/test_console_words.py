"""Every word the console shows comes from its dictionary (console/src/i18n.js), in Italian and in
English: the two dictionaries have the same keys, and every key the screens ask for exists. Read
from the source, no browser needed."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "console" / "src"
ENTRY = re.compile(r"^  '([^']+)':", re.M)
ASKED = re.compile(r"\bt\(\s*'([^']+)'")  # t('key' …): a fixed key (composed keys are checked with has())


def dictionaries() -> dict[str, set[str]]:
    text = (SRC / "i18n.js").read_text(encoding="utf-8")
    it_part = text.split("const it = {", 1)[1].split("\n};", 1)[0]
    en_part = text.split("const en = {", 1)[1].split("\n};", 1)[0]
    return {"it": set(ENTRY.findall(it_part)), "en": set(ENTRY.findall(en_part))}


def test_italian_and_english_have_the_same_words():
    found = dictionaries()
    assert len(found["it"]) > 200
    assert found["it"] - found["en"] == set(), "missing in English"
    assert found["en"] - found["it"] == set(), "missing in Italian"


def test_every_word_a_screen_asks_for_is_in_the_dictionary():
    known = dictionaries()["it"]
    asked = {key for path in SRC.glob("*.js*") for key in ASKED.findall(path.read_text(encoding="utf-8"))}
    assert asked, "no t('…') found: the pattern no longer matches the source"
    assert asked - known == set()


def test_every_kind_of_poll_error_has_its_words():
    # the mailbox health shows `admin.kind.<error_kind>`: a kind without words would show the key
    code = Path(__file__).resolve().parents[2] / "shared" / "pecflow"
    recorded = set(re.findall(r'error_kind="([a-z_-]+)"', (code / "services" / "polling.py").read_text()))
    opened = set(re.findall(r'MailboxUnavailable\(\s*"([a-z_-]+)"', "".join(
        p.read_text() for p in code.rglob("*.py")
    )))  # fmt: skip
    documented = set(
        re.search(r"`kind`: ([a-z| ]+)", (code / "domain" / "ports.py").read_text())[1].split(" | ")
    )
    kinds = recorded | opened | documented
    assert {"archive", "internal", "auth", "unreachable"} <= kinds, kinds
    known = dictionaries()
    for lang in ("it", "en"):
        assert {f"admin.kind.{k}" for k in kinds} - known[lang] == set(), lang
