"""Escapes from the campaign templates' sandbox, in every template a campaign has (subject,
text body, HTML body, the PDF's file name and its text): each attempt is refused (a syntax,
sandbox or limit error naming the template) or renders nothing of Python's insides. The campaign
templates are the only templates people write (no auto-reply template exists yet: when one is
added, add it to FIELDS). And the three shapes the issue names end quickly with a clear error."""

from __future__ import annotations

import re
import time

import pytest

from pecflow.domain.campaign import CampaignError, Manifest, compile_templates, render_message
from tests.security.conftest import WHEN

FIELDS = ("subject", "body_text", "body_html", "pdf.filename", "pdf.template")
ROW = {"nome": "Mario", "pec": "mario@pec.it"}

ESCAPES = [
    "{{ nome.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['__builtins__'] }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ range.__self__ }}",
    "{{ nome|attr('__class__') }}",
    "{{ (nome|attr('__class__')).__base__.__subclasses__() }}",
    "{{ request.application.__globals__ }}",
    "{{ config.items() }}",
    "{% set x = nome.__class__ %}{{ x }}",
    "{{ nome.format.__self__.__class__ }}",
    # format-string attacks: attribute and item lookups inside the format specification
    "{{ '{0.__class__.__mro__}'.format(nome) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ '{0.__class__}'|format(nome) }}",
    "{{ '%(a)s'|format(a=nome.__class__) }}",
    "{{ '{x.__class__}'.format_map({'x': nome}) }}",
    "{{ ('{0.' ~ '__class__}').format(nome) }}",
]
LEAKS = re.compile(r"<class |<built-in|<function |<module |__builtins__|environ|AWS_|/bin/|uid=", re.I)


def manifest_with(field: str, source: str) -> Manifest:
    data: dict = {"mailbox": "ufficio@pec.azienda.it", "subject": "Avviso", "body_text": "Gentile {{ nome }}"}
    if field.startswith("pdf."):
        data["pdf"] = {"filename": "avviso.pdf", "template": "Avviso", field[4:]: source}
    else:
        data[field] = source
    return Manifest.from_dict(data)


def outcome(field: str, source: str) -> str:
    """The rendered message, or the campaign error's words."""
    try:
        manifest = manifest_with(field, source)
        return render_message(manifest, ROW, mailbox="ufficio@pec.azienda.it", message_id="<t@pec.azienda.it>",
                              date=WHEN, templates=compile_templates(manifest)).decode("utf-8", "replace")  # fmt: skip
    except CampaignError as exc:
        return f"ERROR {exc}"


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("source", ESCAPES)
def test_no_template_reaches_pythons_insides(field, source):
    said = outcome(field, source)
    assert said.startswith("ERROR"), said[:600]
    assert not LEAKS.search(said.replace("__class__", "").replace("_TemplateReference__context", "")), said[
        :600
    ]


def test_the_control_renders():
    assert "Gentile Mario" in outcome("body_text", "Gentile {{ nome }}")


@pytest.mark.parametrize(
    "source, said",
    [
        ("{% for i in range(10**9) %}{{ i }}{% endfor %}", "range would be too long"),
        ('{{ "a" * 10**9 }}', "too large"),
        ('{{ "a" * 10**5 * 10**5 }}', "too large"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "call themselves too deeply"),
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply|too many|at most"),
        ("{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000, "nested too deeply|at most"),
        ("{{ [" * 3000 + "]" * 3000 + " }}", "nested too deeply|at most"),
    ],
    ids=["range-1e9", "a-times-1e9", "product", "recursion", "parentheses", "nested-ifs", "nested-lists"],
)
def test_the_issues_shapes_end_quickly_with_a_clear_error(source, said):
    started = time.monotonic()
    words = outcome("body_text", source)
    assert time.monotonic() - started < 10
    assert words.startswith("ERROR") and re.search(said, words), words[:600]
