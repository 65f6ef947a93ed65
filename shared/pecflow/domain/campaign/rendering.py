"""One recipient's PEC, rendered from the manifest's templates and the recipient's row.

Templates run in Jinja2's sandbox with StrictUndefined (a variable that is not a column is an
error, never an empty string); HTML bodies are autoescaped. Italian filters: `data` (dates)
and `importo` (amounts). The message is built with `email.message.EmailMessage` (policy SMTP,
CRLF): From is the mailbox, To is the row's address alone, and no value from the row can reach
a header other than the Subject, which is rendered on one line. Pure: no I/O.

Templates are bounded in time and memory, by the same mechanism when validating and when
sending (`Templates.render`): one row's templates together have a time budget (RENDER_SECONDS)
and budgets of loop iterations, calls and characters written; no value they build (text, list,
number) may pass MAX_SEQUENCE characters or items (MAX_INT_BITS for a number), refused before
the operations that could build one at once (`*`, `**`, `%`, `center`, `join`...). Over a limit,
the row's RenderError has code TEMPLATE_LIMIT. See "the sandbox" below.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cache, lru_cache
from itertools import chain
from types import BuiltinMethodType, GeneratorType, MethodType
from typing import TYPE_CHECKING, Any, NoReturn, cast

from jinja2 import (
    Environment,
    StrictUndefined,
    TemplateSyntaxError,
    meta,
    nodes,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Macro, markup_join, str_join
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, concat
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from pecflow.domain.campaign.issues import Code, Issue, ManifestError, RenderError
from pecflow.domain.campaign.manifest import Manifest, address_problem, extension, show
from pecflow.domain.campaign.pdf import text_pdf

if TYPE_CHECKING:
    from jinja2.runtime import Context

    from pecflow.domain.campaign.recipients import Row

MESI = (
    "gennaio",
    "febbraio",
    "marzo",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "agosto",
    "settembre",
    "ottobre",
    "novembre",
    "dicembre",
)
GIORNI = ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica")
DATE_PRESETS = {"breve": "%d/%m/%Y", "lungo": "%d %B %Y", "esteso": "%A %d %B %Y"}
MAX_DATE_FORMAT = 200  # characters of a `data` format

# by extension; anything else (a .eml too: base64 is not allowed on message/rfc822) is octet-stream
_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "p7m": "application/pkcs7-mime",
    "p7s": "application/pkcs7-signature",
    "xml": "application/xml",
    "txt": "text/plain",
    "csv": "text/csv",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "zip": "application/zip",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "json": "application/json",
}
TEST_MARK = "[PROVA]"  # the subject of a test send starts with it
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_UNSAFE_NAME = re.compile(r'[<>:"/\\|?*]')
_MESSAGE_ID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII, no <, > or spaces


# --- Italian filters --------------------------------------------------------------------------------
_IT_DATE = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{2,4})(?:[ T](\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?)?$")
_STRFTIME = re.compile(r"%(-?)(.)")
_PLAIN_AMOUNT = re.compile(r"-?\d{1,15}(?:[.,]\d{1,2})?")
_AMOUNT_NOISE = re.compile(r"[\s\u00a0€]|EUR", re.I)


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        raise ValueError("data: the value is empty")
    match = _IT_DATE.match(text)
    try:
        if match:
            day, _, month, year, hour, minute, second = match.groups()
            if len(year) != 4:
                raise ValueError(
                    f"data: {text!r} has a {len(year)}-digit year: write it with four (02/03/2026)"
                )
            if hour is None:
                return date(int(year), int(month), int(day))
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        if str(exc).startswith("data:"):
            raise
        raise ValueError(f"data: {text!r} is not a date (write 02/03/2026 or 2026-03-02)") from None


def data(value: Any, formato: str = "%d/%m/%Y") -> str:
    """A date as Italians write it: 02/03/2026 by default; `formato` is a strftime pattern with
    Italian names (%B marzo, %b mar, %A lunedì, %a lun) or a preset: 'breve' 02/03/2026,
    'lungo' 2 marzo 2026, 'esteso' lunedì 2 marzo 2026. Beside a month or day name, %d has no
    leading zero, as in Italian prose ('%d %B %Y' → 2 marzo 2026); %-d never has one."""
    if isinstance(formato, str) and len(formato) > MAX_DATE_FORMAT:
        raise ValueError(f"data: the format is longer than {MAX_DATE_FORMAT} characters")
    if isinstance(value, str) and len(value) <= 64:
        return _data_of_text(value, formato)  # a campaign's dates repeat: remembered
    return _format_date(_as_date(value), formato)


@lru_cache(maxsize=128)
def _data_of_text(value: str, formato: str) -> str:
    return _format_date(_as_date(value), formato)


def _format_date(when: date, formato: str) -> str:
    pattern = DATE_PRESETS.get(formato, formato)
    prose = "%B" in pattern or "%A" in pattern

    def one(match: re.Match[str]) -> str:
        strip, code = match.groups()
        strip = strip or (prose and code == "d")
        if code == "%":
            return "%"
        if code == "B":
            out = MESI[when.month - 1]
        elif code == "b":
            out = MESI[when.month - 1][:3]
        elif code == "A":
            out = GIORNI[when.weekday()]
        elif code == "a":
            out = GIORNI[when.weekday()][:3]
        else:
            out = when.strftime("%" + code)
        return (out.lstrip("0") or "0") if strip else out

    return _STRFTIME.sub(one, pattern)


def _as_amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"importo: {value!r} is not an amount")
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    original = str(value)
    if _PLAIN_AMOUNT.fullmatch(original):
        return Decimal(original.replace(",", "."))  # 1500, 1500.5, 1500,50: the usual case
    text = _AMOUNT_NOISE.sub("", original.strip())
    if not text:
        raise ValueError("importo: the value is empty")
    if "," in text and "." in text:
        # the last separator is the decimal one: 1.500,00 (Italian) or 1,500.00 (English)
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")  # 1500,5
    elif "," in text:
        text = text.replace(",", "")  # 1,500,000
    elif re.fullmatch(r"[+-]?\d{1,3}(?:\.\d{3})+", text):
        text = text.replace(".", "")  # 1.500 and 12.345.678: Italian thousands
    if not re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text):
        raise ValueError(f"importo: {original.strip()!r} is not an amount (write 1500,00 or 1.500,00)")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"importo: {original.strip()!r} is not an amount") from None


_CENT = Decimal("0.01")
_ITALIAN_NUMBER = str.maketrans(",.", ".,")


def importo(value: Any, simbolo: bool = True) -> str:
    """An amount in euro as Italians write it: 1500, "1500.5", "1.500,00" → 1.500,00 €
    (`simbolo=False`: 1.500,00). Rounded half up to the cent."""
    try:
        amount = _as_amount(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more than 26 digits before the comma
        raise ValueError(f"importo: {show(str(value))} is too large an amount") from None
    if amount.is_zero():
        amount = amount.copy_abs()  # never "-0,00"
    text = f"{amount:,.2f}".translate(_ITALIAN_NUMBER)  # 1,500.00 → 1.500,00
    return f"{text} €" if simbolo else text


# --- the sandbox: bounded in time and memory ----------------------------------------------------------
# Jinja compiles a template to Python (a {% for %} is a plain `for`, a filter a plain call), so the
# bounds sit where every operation of a template passes:
# - the parsed template is rewritten before it is compiled (`_Hardener`): each {% for %} iterates
#   through `_pecflow_loop` (charges the row's loop and output budgets, looks at the clock); `~`,
#   list, tuple and dict literals, comparisons, tests and slices pass through checks too;
# - every call (function, method, macro) goes through `_Sandbox.call`, every filter through
#   `_bounded`, the operators + * ** % through `call_binop`, every {{ output }} through `_written`;
# - what one C call could blow up before any check runs (a width of 10**9, a huge power, a
#   repetition) is refused from its arguments, before the call: `_check_*`.
# The budgets are per row (all its templates together), in a context variable started by
# Templates.render; outside it (the environment used alone) only the size bounds apply.
MAX_SEQUENCE = 1_000_000  # the longest text, the most items (and their characters) a template may build
MAX_INT_BITS = 10_000  # the largest number a template may build (about 3,000 digits)
MAX_EXPONENT = 100  # also the largest precision of `round`
RENDER_SECONDS = 2.0  # per row: generous, a row of a normal campaign takes well under a millisecond
MAX_ITERATIONS = 100_000  # loop iterations per row
MAX_CALLS = 20_000  # function, method and macro calls per row
MAX_RENDERED = 4_000_000  # characters written per row (lowered to the manifest's max_message_bytes)
MAX_TAG_CHARS = 20_000  # characters inside {{ }} and {% %} of one template: what compiling costs

_monotonic = time.monotonic


class TemplateLimitError(SecurityError):
    """A template over one of its limits; the message says which, for the user."""


class _Budget:
    """What the templates of the row being rendered may still spend. One per thread, kept
    between rows (idle: no limit) so that a row costs no allocation for it."""

    __slots__ = ("deadline", "seconds", "iterations", "calls", "chars", "max_chars")

    def __init__(self) -> None:
        self.seconds, self.max_chars = 0.0, 0
        self.stop()

    def start(self, seconds: float, max_chars: int) -> None:
        self.seconds, self.deadline = seconds, _monotonic() + seconds
        self.iterations, self.calls = MAX_ITERATIONS, MAX_CALLS
        self.chars = self.max_chars = max_chars

    def stop(self) -> None:
        self.deadline, self.iterations = math.inf, _UNLIMITED
        self.calls = self.chars = _UNLIMITED

    @property
    def idle(self) -> bool:
        return self.deadline == math.inf

    def exceeded(self) -> NoReturn:
        if self.chars < 0:
            raise TemplateLimitError(
                f"the templates would write more than {self.max_chars:,} characters for this row"
            )
        if self.iterations < 0:
            raise TemplateLimitError(
                f"the templates loop more than {MAX_ITERATIONS:,} times for this row (a loop too long?)"
            )
        if self.calls < 0:
            raise TemplateLimitError(
                f"the templates make more than {MAX_CALLS:,} calls for this row (a macro calling itself?)"
            )
        raise TemplateLimitError(
            f"the template took longer than {self.seconds:g} s for this row "
            "(a loop too long, a macro calling itself?)"
        )


_UNLIMITED = 1 << 62
_BUDGET: ContextVar[_Budget | None] = ContextVar("pecflow_template_budget", default=None)


def _budget(seconds: float, max_chars: int) -> tuple[_Budget, Token[_Budget | None] | None]:
    """The thread's budget, started; with the token to reset when it is a new one for a render
    inside another (never in practice)."""
    budget, token = _BUDGET.get(), None
    if budget is None:
        budget = _Budget()
        _BUDGET.set(budget)  # kept for the next rows of this thread
    elif not budget.idle:
        budget = _Budget()
        token = _BUDGET.set(budget)
    budget.start(seconds, max_chars)
    return budget, token


def _end(budget: _Budget, token: Token[_Budget | None] | None) -> None:
    budget.stop()
    if token is not None:
        _BUDGET.reset(token)


def _check_clock() -> None:
    budget = _BUDGET.get()
    if budget is not None and _monotonic() > budget.deadline:
        budget.exceeded()


def _too_large(what: str) -> str:
    return f"{what} would be too large (more than {MAX_SEQUENCE:,} characters or items)"


def _check_length(what: str, length: Any) -> None:
    """Refuse a width, count or length that alone makes a result longer than MAX_SEQUENCE."""
    if isinstance(length, int) and length > MAX_SEQUENCE:
        raise TemplateLimitError(_too_large(f"{what}({length:,})"))


def _check_estimate(what: str, estimate: int) -> None:
    if estimate > MAX_SEQUENCE:
        raise TemplateLimitError(_too_large(what))


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _leaf_size(item: Any) -> int | None:
    """The written size of a text, a number or another scalar; None for a list, tuple, dict,
    set or namespace. A list of texts (or of numbers) only is counted whole, at C speed."""
    if isinstance(item, (str, bytes)):
        return len(item) + 2
    if isinstance(item, int):
        return item.bit_length() // 3 + 1
    if isinstance(item, Namespace):  # {% set ns.x = ... %} fills it with no check
        return None
    if isinstance(item, _CONTAINERS):
        if not isinstance(item, dict):
            kinds = set(map(type, item))
            if kinds <= {str}:
                return 2 * len(item) + 2 + sum(map(len, item))
            if kinds <= {int}:
                return 2 * len(item) + 2 + sum(map(int.bit_length, item)) // 3 + len(item)
        return None
    return 8


def _size(value: Any, limit: int = MAX_SEQUENCE) -> int:
    """About how many characters `value` takes written out: its texts' characters and its items,
    one held twice counted twice, as printing it would (each list is looked at once, so a list
    repeated a million times costs nothing to count). A list holding itself counts as endless.
    Counting stops past `limit`."""
    if isinstance(value, (str, bytes)):
        return len(value)
    own = _leaf_size(value)
    if own is not None:
        return own
    known: dict[int, int] = {}  # id of a list already counted -> its size
    open_ = {id(value)}  # lists being counted (one inside itself: endless)
    frames = [[value, _items(value), 2 * len(_attrs(value)) + 2]]
    while frames:
        frame = frames[-1]
        for child in frame[1]:
            size = _leaf_size(child)
            if size is None:
                size = known.get(id(child))
                if size is None:
                    if id(child) in open_:
                        return limit + 1
                    open_.add(id(child))
                    frames.append([child, _items(child), 2 * len(_attrs(child)) + 2])
                    break
            frame[2] += size
            if frame[2] > limit:
                return cast(int, frame[2])
        else:
            frames.pop()
            open_.discard(id(frame[0]))
            known[id(frame[0])] = frame[2]
            if not frames:
                return cast(int, frame[2])
            frames[-1][2] += frame[2]
            if frames[-1][2] > limit:
                return cast(int, frames[-1][2])
    return 0


def _attrs(container: Any) -> Any:
    return container._Namespace__attrs if isinstance(container, Namespace) else container


def _items(container: Any) -> Iterator[Any]:
    """What a container holds: a dict's keys and values, a namespace's values."""
    container = _attrs(container)
    return chain(container, container.values()) if isinstance(container, dict) else iter(container)


def _depth(value: Any, limit: int = MAX_SEQUENCE) -> int:
    """How deeply `value` nests (what pprint and tojson indent by), looking at `limit` items at most."""
    deepest, seen, stack = 0, 0, [(value, 0)]
    while stack and seen <= limit:
        item, depth = stack.pop()
        if isinstance(item, Namespace):
            item = item._Namespace__attrs
        if isinstance(item, _CONTAINERS):
            deepest, seen = max(deepest, depth + 1), seen + len(item) + 1
            stack.extend(
                (child, depth + 1)
                for child in (item.values() if isinstance(item, dict) else item)
                if isinstance(child, _CONTAINERS) or isinstance(child, Namespace)
            )
    return deepest


def _checked(value: Any, what: str = "the value") -> Any:
    """`value`, refused when larger than MAX_SEQUENCE (MAX_INT_BITS for a number); a generator's
    items are checked as they come."""
    if isinstance(value, (str, bytes)):
        if len(value) > MAX_SEQUENCE:
            raise TemplateLimitError(_too_large(what))
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(
                f"{what} would be too large (a number of more than {MAX_INT_BITS * 3 // 10:,} digits)"
            )
    elif isinstance(value, _CONTAINERS):
        if _size(value) > MAX_SEQUENCE:
            raise TemplateLimitError(_too_large(what))
    elif isinstance(value, GeneratorType):
        return _checked_items(value, what)
    return value


def _checked_items(items: Iterable[Any], what: str) -> Iterator[Any]:
    for item in items:
        yield _checked(item, what)


# --- checks before the operations that can build a lot at once --------------------------------------
def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(exponent, (int, float)) and abs(exponent) > MAX_EXPONENT:
        raise TemplateLimitError(f"exponent too large: at most {MAX_EXPONENT}")
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise TemplateLimitError(
            f"the result of ** would be too large (a number of more than {MAX_INT_BITS * 3 // 10:,} digits)"
        )


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(
                f"the result of * would be too large (a number of more than "
                f"{MAX_INT_BITS * 3 // 10:,} digits)"
            )
        return
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int):
            _check_estimate("the result of *", len(sequence) * times)
            if isinstance(sequence, (list, tuple)) and times > 1:  # items repeated: their size too
                _check_estimate("the result of *", _size(sequence) * times)


def _check_sum(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
        _check_estimate("the result of +", len(left) + len(right))
        if isinstance(left, (list, tuple)):
            _check_estimate("the result of +", _size(left) + _size(right))


# %[(key)][flags][width][.precision][length]type, width and precision may be * (taken from the values)
_PRINTF = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def _format_number(value: Any) -> int:
    """A width or precision, written ('12') or given by * (an int); 0 when it is neither."""
    if isinstance(value, str):
        return MAX_SEQUENCE + 1 if len(value) > 7 else int(value or 0)
    return abs(value) if isinstance(value, int) else 0


def _check_printf(what: str, template: str | bytes, args: Any) -> None:
    """Refuse a %-formatting whose result would pass MAX_SEQUENCE: its widths, its precisions and
    the values it writes, counted before Python builds it."""
    if isinstance(template, bytes):
        template = template.decode("latin-1")
    values = list(args) if isinstance(args, tuple) else [args]
    mapping = args if isinstance(args, Mapping) else None
    position, total = 0, len(template)
    for match in _PRINTF.finditer(template):
        key, width, precision, kind = match.groups()
        if kind == "%":
            continue
        if width == "*":
            width, position = values[position] if position < len(values) else 0, position + 1
        if precision == "*":
            precision, position = values[position] if position < len(values) else 0, position + 1
        if key is not None:
            value = mapping.get(key) if mapping is not None else None
        else:
            value, position = values[position] if position < len(values) else None, position + 1
        # 320: the digits of a float, up to 1e308
        total += _format_number(width) + _format_number(precision) + _size(value) + 320
        _check_estimate(what, total)


def _replaced_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    """The length of text.replace(old, new, count), from counting old."""
    kind = str if isinstance(text, str) else bytes
    if not (isinstance(old, kind) and isinstance(new, kind)):
        return 0  # replace() itself says what is wrong
    # old has text's type (checked above), which mypy cannot follow through `kind`
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


# methods of str and bytes that build more than they are given: (text, args, kwargs) -> args
_TextMethodCheck = Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]


def _width_method(name: str) -> _TextMethodCheck:
    def check(text: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        _check_length(name, args[0] if args else None)
        return args

    return check


def _expandtabs(text: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    size = args[0] if args else kwargs.get("tabsize", 8)
    if isinstance(size, int):
        # the tab has text's type, which mypy cannot follow through the isinstance
        _check_estimate("expandtabs", len(text) + text.count("\t" if isinstance(text, str) else b"\t") * size)  # type: ignore[arg-type]
    return args


def _replace_method(text: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _check_estimate("replace", _replaced_size(text, args[0], args[1], count))
    return args


def _join_method(separator: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if len(args) != 1:
        return args
    items = list(args[0])
    written = sum(len(item) for item in items if isinstance(item, (str, bytes)))
    _check_estimate("join", written + len(separator) * max(0, len(items) - 1))
    return (items,)


def _translate(text: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    table = args[0] if args else None
    if isinstance(text, str) and isinstance(table, Mapping):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        _check_estimate("translate", len(text) * max(longest, 1))
    return args


_TEXT_METHODS: dict[str, _TextMethodCheck] = {
    "center": _width_method("center"),
    "ljust": _width_method("ljust"),
    "rjust": _width_method("rjust"),
    "zfill": _width_method("zfill"),
    "expandtabs": _expandtabs,
    "replace": _replace_method,
    "join": _join_method,
    "translate": _translate,
}
_MUTATORS = frozenset(["append", "extend", "insert", "update", "setdefault", "add"])


# filters that build more than they are given: called with the filter's arguments (without the
# context or environment Jinja passes first); may return new arguments (an iterator read once)
def _center(value: Any = None, width: Any = 80, *args: Any, **kwargs: Any) -> None:
    _check_length("center", width)


def _indent(s: Any = None, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    if isinstance(width, int):
        _check_length("indent", width)
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if isinstance(s, str):
        _check_estimate("indent", len(s) + (s.count("\n") + 1) * step)


def _wordwrap(
    s: Any = None,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    *args: Any,
    **kwargs: Any,
) -> None:
    if isinstance(s, str):
        _check_estimate("wordwrap", len(s) * (1 + (len(wrapstring) if isinstance(wrapstring, str) else 1)))


def _format(value: Any = None, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_printf("format", value, kwargs or args)


def _replace(
    s: Any = None, old: Any = None, new: Any = None, count: Any = None, *args: Any, **kwargs: Any
) -> None:
    if old is not None and new is not None:
        _check_estimate("replace", _replaced_size(str(s), str(old), str(new), -1 if count is None else count))


def _join(value: Any = (), *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    items = value if isinstance(value, (list, tuple)) else list(value)
    separator = str(args[0] if args else kwargs.get("d", ""))
    _check_estimate("join", sum(_size(item) for item in items) + len(separator) * max(0, len(items) - 1))
    return (items, *args)


def _count_argument(name: str) -> Callable[..., None]:
    def check(value: Any = None, count: Any = None, *args: Any, **kwargs: Any) -> None:
        _check_length(name, count)

    return check


def _urlize(value: Any = None, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_SEQUENCE // 10:  # it takes ~150 bytes a character
        raise TemplateLimitError(f"urlize: the text is longer than {MAX_SEQUENCE // 10:,} characters")


def _round(value: Any = None, precision: Any = 0, *args: Any, **kwargs: Any) -> None:
    if isinstance(precision, int) and abs(precision) > MAX_EXPONENT:
        raise TemplateLimitError(f"round: a precision of {precision:,} is too large (at most {MAX_EXPONENT})")


def _tojson(value: Any = None, indent: Any = None, *args: Any, **kwargs: Any) -> None:
    step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    _check_length("tojson", step)
    if step > 0:
        _check_estimate("tojson", _size(value) * (1 + step * (_depth(value) + 1)))


def _pprint(value: Any = None, *args: Any, **kwargs: Any) -> None:
    _check_estimate("pprint", _size(value) * (1 + _depth(value)))


# filters building at most a few times what they are given, in one pass: left as they are (the
# cost of a wrapper on the filters every template uses); the others go through _bounded
_LINEAR_FILTERS = frozenset(
    [
        "upper",
        "lower",
        "trim",
        "title",
        "capitalize",
        "default",
        "d",
        "safe",
        "length",
        "count",
        "first",
        "last",
        "float",
        "abs",
        "striptags",
        "wordcount",
        "truncate",
        "filesizeformat",
        "random",
        "attr",
        "reverse",
        "data",
        "importo",
    ]
)
_FILTER_CHECKS: dict[str, Callable[..., tuple[Any, ...] | None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "batch": _count_argument("batch"),
    "slice": _count_argument("slice"),
    "round": _round,
    "tojson": _tojson,
    "pprint": _pprint,
    "urlize": _urlize,
}


def _bounded(
    name: str, func: Callable[..., Any], check: Callable[..., tuple[Any, ...] | None] | None = None
) -> Callable[..., Any]:
    """The filter `func`, looking at the clock, refusing from its arguments (`check`) what would be
    too large to build, and checking what it built."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context, environment...
    what = f"the filter {name}"

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None and _monotonic() > budget.deadline:
            budget.exceeded()
        if check is not None:
            changed = check(*args[skip:], **kwargs)
            if changed is not None:
                args = (*args[:skip], *changed)
        result = func(*args, **kwargs)
        if type(result) is str and len(result) <= MAX_SEQUENCE:
            return result  # the usual case, at once
        return _checked(result, what)

    return bounded


def _sum_of(original: Callable[..., Any]) -> Callable[..., Any]:
    """`sum` adding lists or tuples in one pass (Python's sum copies the growing list at every
    item: a million small lists would take hours); numbers as before; amounts written as text
    (CSV cells: "1.234,56", "1500,5", "€ 12") read as `importo` reads them, added exactly
    (Decimal), so that `righe|sum(attribute='importo')|importo` is the total of a group."""

    @pass_environment
    def do_sum(environment: Environment, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, (list, tuple)):
            if attribute is not None:
                iterable = map(make_attrgetter(environment, attribute), iterable)
            items = list(iterable)
            if any(isinstance(item, str) for item in items):
                try:
                    return sum(map(_as_amount, items), _as_amount(start))
                except ValueError as exc:
                    raise ValueError(f"sum{str(exc).removeprefix('importo')}") from None
            return original(environment, items, None, start)
        if attribute is not None:
            iterable = map(make_attrgetter(environment, attribute), iterable)
        items = list(iterable)
        kind = type(start)
        if not all(isinstance(item, kind) for item in items):
            raise TypeError(f"sum: only {kind.__name__}s can be added to a {kind.__name__}")
        _check_estimate("sum", len(start) + sum(map(len, items)))
        return kind(chain(start, *items))

    return do_sum


def _range_of(original: Callable[..., Any]) -> Callable[..., Any]:
    """The sandbox's range (at most MAX_RANGE numbers), saying so as a limit."""

    def range(*args: Any) -> Any:
        try:
            return original(*args)
        except OverflowError:
            raise TemplateLimitError(f"range would be too long: at most {MAX_RANGE:,} numbers") from None

    return range


def _lipsum_of(original: Callable[..., Any]) -> Callable[..., Any]:
    def lipsum(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> Any:
        for value, top in ((n, 100), (min, 1000), (max, 1000)):
            if isinstance(value, int) and value > top:
                raise TemplateLimitError("lipsum: at most 100 paragraphs (n) of 1,000 words (min, max)")
        return original(n, html, min, max)

    return lipsum


# the filters the rewritten templates call (see _Hardener)
@pass_context
def _loop(context: Context, iterable: Iterable[Any], literal: int = 0) -> Iterator[Any]:
    """The items of a {% for %}: each charges an iteration and `literal` characters (the text of
    the loop's body) to the row's budget, and looks at the clock."""
    budget = _BUDGET.get()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.iterations -= 1
        budget.chars -= literal
        if budget.iterations < 0 or budget.chars < 0 or _monotonic() > budget.deadline:
            budget.exceeded()
        yield item


@pass_eval_context
def _concat(eval_ctx: nodes.EvalContext, *parts: Any) -> Any:
    """`~`, with the size of the result checked before it is built."""
    _check_clock()
    _check_estimate("the result of ~", sum(len(p) if isinstance(p, str) else _size(p) for p in parts))
    return _checked(markup_join(parts) if eval_ctx.autoescape else str_join(parts), "the result of ~")


def _built(value: Any) -> Any:
    """A list, tuple or dict written in the template, checked once built."""
    _check_clock()
    return _checked(value, "the list")


def _tick(value: Any) -> Any:
    """A comparison, a test or a slice (each may read a long text) looks at the clock."""
    _check_clock()
    return value


def _charge(chars: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.chars -= chars
        if budget.chars < 0:
            budget.exceeded()


@pass_context
def _block_written(context: Context, value: Any) -> Any:
    """What a {% filter %} block writes (it bypasses `_written`)."""
    _charge(len(value) if isinstance(value, str) else _size(value, MAX_RENDERED))
    return value


@pass_eval_context
def _written(eval_ctx: nodes.EvalContext, value: Any) -> Any:
    """Every {{ output }}, in the template or in a {% set %} block or a macro: charged to the row.
    (Taking the evaluation context keeps Jinja from computing constant outputs while compiling.)"""
    budget = _BUDGET.get()
    if budget is not None:
        budget.chars -= len(value) if isinstance(value, str) else _size(value, max(budget.chars, 0))
        if budget.chars < 0:
            budget.exceeded()
    return value


_INTERNAL_FILTERS = {
    "_pecflow_loop": _loop,
    "_pecflow_concat": _concat,
    "_pecflow_built": _built,
    "_pecflow_tick": _tick,
    "_pecflow_written": _block_written,
}


def _literal_chars(node: nodes.Node) -> int:
    """Characters of template text `node` writes each time it runs, its inner loops and macros
    aside (they are charged on their own)."""
    if isinstance(node, nodes.TemplateData):
        return len(node.data)
    if isinstance(node, (nodes.Macro, nodes.CallBlock)):
        return 0
    children = node.else_ if isinstance(node, nodes.For) else node.iter_child_nodes()
    return sum(_literal_chars(child) for child in children)


def _internal(name: str, node: nodes.Node, *args: nodes.Node) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


def _constant(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Pair):
        return _constant(node.key) and _constant(node.value)
    return isinstance(node, nodes.Const)


class _Hardener(NodeTransformer):
    """Rewrites a parsed template so that its loops, `~`, literals, comparisons, tests, slices
    and filter blocks go through the budget and size checks above."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        literal = sum(_literal_chars(child) for child in node.body)
        node.iter = _internal("_pecflow_loop", node.iter, nodes.Const(literal, lineno=node.lineno))
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _internal("_pecflow_concat", *node.nodes)

    def _literal(self, node: nodes.List | nodes.Dict | nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return node if all(map(_constant, node.items)) else _internal("_pecflow_built", node)

    visit_List = visit_Dict = _literal

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._literal(node) if node.ctx == "load" else self.generic_visit(node)

    def _ticking(self, node: nodes.Expr) -> nodes.Filter:
        self.generic_visit(node)
        return _internal("_pecflow_tick", node)

    visit_Compare = visit_Test = _ticking

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        return self._ticking(node) if isinstance(node.arg, nodes.Slice) else self.generic_visit(node)

    def visit_FilterBlock(self, node: nodes.FilterBlock) -> nodes.FilterBlock:
        self.generic_visit(node)
        node.filter = _internal("_pecflow_written", node.filter)
        return node


class _BoundedFormatter(SandboxedFormatter):
    """str.format and format_map in templates: every width and precision, and the whole result,
    within MAX_SEQUENCE."""

    def __init__(self, env: Environment, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.written = 0

    def format_field(self, value: Any, format_spec: str) -> str:
        for number in re.findall(r"\d+", format_spec):
            if len(number) > 7 or int(number) > MAX_SEQUENCE:
                raise TemplateLimitError(_too_large(f"format: a width or precision of {number[:12]}"))
        text: str = super().format_field(value, format_spec)
        self.written += len(text)
        _check_estimate("the result of format", self.written)
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, bounded in time and memory (see above)."""

    intercepted_binops = frozenset(["+", "*", "**", "%"])

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # every template source Jinja reads (parse, from_string, compile) is parsed here
        tree: nodes.Template = _Hardener().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_clock()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "+":
            _check_sum(left, right)
        elif isinstance(left, (str, bytes)):  # % formatting
            _check_printf("the result of %", left, right)
        result = self.binop_table[operator](left, right)
        return result if isinstance(result, (list, tuple)) else _checked(result, f"the result of {operator}")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.calls -= 1
            if budget.calls < 0 or _monotonic() > budget.deadline:
                budget.exceeded()
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", None)
        if isinstance(owner, (str, bytes)) and name in _TEXT_METHODS:
            args = _TEXT_METHODS[name](owner, args, kwargs)
        elif type(owner) is int and name == "to_bytes":
            _check_length("to_bytes", args[0] if args else kwargs.get("length"))
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(owner, (str, bytes)):  # a list from split...: no more than the text
            return _checked(result, f"the result of {name}") if isinstance(result, (str, bytes)) else result
        if isinstance(obj, Macro) and isinstance(result, str):
            _charge(len(result))  # a {% call %} block writes it unseen by _written
        if isinstance(owner, _CONTAINERS) and name in _MUTATORS:
            _checked(owner, f"the list after {name}")
        return _checked(result, f"the result of {name or 'the call'}")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """str.format and format_map, through a formatter that bounds what they write."""
        if (
            not isinstance(value, (MethodType, BuiltinMethodType))
            or value.__name__ not in ("format", "format_map")
            or not isinstance(value.__self__, str)
        ):
            return None
        text, by_map = value.__self__, value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if by_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs = args[0]
                args = ()
            formatter = (
                _BoundedEscapeFormatter(self, escape=text.escape)
                if isinstance(text, Markup)
                else _BoundedFormatter(self)
            )
            return type(text)(formatter.vformat(text, args, kwargs))

        return bounded_format


@cache
def environment(html: bool = False) -> SandboxedEnvironment:
    """The template environment: sandboxed and bounded, StrictUndefined, autoescaped for HTML only."""
    # optimized=False: Jinja's folding of constant expressions at compile time costs the square of
    # their depth, and would run template code outside the budgets
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=html,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_written,
        optimized=False,
    )
    env.filters["data"] = data
    env.filters["importo"] = importo
    env.filters["sum"] = _sum_of(env.filters["sum"])
    for name, func in list(env.filters.items()):
        if name not in _LINEAR_FILTERS:
            env.filters[name] = _bounded(name, func, _FILTER_CHECKS.get(name))
    env.filters.update(_INTERNAL_FILTERS)
    # jinja2 types its default globals as object
    env.globals["lipsum"] = _lipsum_of(env.globals["lipsum"])  # type: ignore[arg-type]
    env.globals["range"] = _range_of(env.globals["range"])  # type: ignore[arg-type]
    return env


_GLOBALS = dict(environment().globals)


# --- the manifest's templates --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str  # one line
    text: str
    html: str | None = None
    pdf_filename: str | None = None
    pdf_text: str | None = None


@dataclass(frozen=True, slots=True)
class Templates:
    """The manifest's templates, compiled once; `variables` are the merge fields they use."""

    compiled: tuple[tuple[str, Any], ...]  # (manifest field, jinja2 Template)
    variables: frozenset[str]
    uses: tuple[tuple[str, frozenset[str]], ...] = ()  # (manifest field, the variables it uses)
    max_chars: int = MAX_RENDERED  # what one row's templates may write, all together
    seconds: float = RENDER_SECONDS  # how long one row's templates may take, all together

    def used_by(self, variable: str) -> str | None:
        """The first template (manifest field) using `variable`."""
        return next((field for field, names in self.uses if variable in names), None)

    def render(self, values: Mapping[str, str]) -> Rendered:
        """Every template for one row, within the row's budgets of time and size; RenderError
        names the template that failed and why (code TEMPLATE_LIMIT when over a limit)."""
        out: dict[str, str] = {}
        # one context for all the templates of the row, globals included (what render() does
        # for each template, at twice the cost)
        context = {**_GLOBALS, **values}
        budget, token = _budget(self.seconds, self.max_chars)
        try:
            for field, template in self.compiled:
                try:
                    out[field] = concat(template.root_render_func(template.new_context(context, shared=True)))
                except Exception as exc:  # noqa: BLE001 - whatever a template raises is this row's error
                    limit = isinstance(exc, (TemplateLimitError, RecursionError, MemoryError))
                    raise RenderError(
                        field, _render_reason(exc), Code.TEMPLATE_LIMIT if limit else Code.RENDER_FAILED
                    ) from None
        finally:
            _end(budget, token)
        subject = one_line(out["subject"])
        if not subject:
            raise RenderError("subject", "the subject is empty")
        pdf_filename = None
        if "pdf.filename" in out:
            pdf_filename = safe_filename(out["pdf.filename"], default="documento", path=False)
            if not pdf_filename.lower().endswith(".pdf"):
                pdf_filename += ".pdf"
        return Rendered(
            subject, out["body_text"], out.get("body_html"), pdf_filename, out.get("pdf.template")
        )


def _render_reason(exc: Exception) -> str:
    if isinstance(exc, TemplateLimitError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "the templates call themselves too deeply (a macro calling itself?)"
    if isinstance(exc, MemoryError):
        return "the template needs too much memory for this row"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {text}"
    return text


class _Variables(meta.TrackingCodeGenerator):
    """The variables a template reads, as jinja2.meta finds them, without folding constants
    (see `environment`)."""

    def __init__(self, environment: Environment):
        super().__init__(environment)
        self.optimizer = None


def _variables(tree: nodes.Template) -> set[str]:
    assert tree.environment is not None  # set by Environment.parse
    finder = _Variables(tree.environment)
    finder.visit(tree)
    return finder.undeclared_identifiers


_TAGS = re.compile(r"\{[{%].*?(?:[}%]\}|\Z)", re.S)


@lru_cache(maxsize=32)
def compile_templates(manifest: Manifest) -> Templates:
    """Compile every template of `manifest`; ManifestError lists each syntax error with its line,
    and each template over MAX_TAG_CHARS (compiling costs time and memory by its tags)."""
    sources = [
        ("subject", manifest.subject, False),
        ("body_text", manifest.body_text, False),
        ("body_html", manifest.body_html, True),
    ]
    if manifest.pdf is not None:
        sources += [
            ("pdf.filename", manifest.pdf.filename, False),
            ("pdf.template", manifest.pdf.template, False),
        ]
    compiled, uses, issues = [], [], []
    known = set(environment().globals)
    budget, token = _budget(RENDER_SECONDS, MAX_RENDERED)  # should anything run while compiling
    try:
        for field, source, html in sources:
            if source is None:
                continue
            tags = sum(map(len, _TAGS.findall(source)))
            if tags > MAX_TAG_CHARS:
                issues.append(
                    Issue(
                        Code.TEMPLATE_LIMIT,
                        f"{tags:,} characters inside {{{{ }}}} and {{% %}}: "
                        f"at most {MAX_TAG_CHARS:,} (the text around them has no such limit)",
                        field=field,
                    )
                )
                continue
            env = environment(html)
            try:
                tree = env.parse(source)
                uses.append((field, frozenset(_variables(tree) - known)))
                compiled.append((field, env.from_string(tree)))
            except TemplateSyntaxError as exc:
                lines = source.splitlines()
                where = ""
                if 0 < (exc.lineno or 0) <= len(lines):
                    where = f" (in: {lines[exc.lineno - 1].strip()[:80]!r})"
                issues.append(
                    Issue(Code.TEMPLATE_SYNTAX, f"line {exc.lineno}: {exc.message}{where}", field=field)
                )
            except (RecursionError, SyntaxError):  # Jinja's parser, or Python's compiler, gave up
                issues.append(
                    Issue(
                        Code.TEMPLATE_SYNTAX,
                        "the template is nested too deeply (brackets, loops or blocks inside each other)",
                        field=field,
                    )
                )
            except ValueError as exc:  # e.g. a number of more than 4,300 digits
                issues.append(
                    Issue(Code.TEMPLATE_SYNTAX, f"the template cannot be compiled: {exc}", field=field)
                )
    finally:
        _end(budget, token)
    if issues:
        raise ManifestError(issues)
    return Templates(
        tuple(compiled),
        frozenset().union(*(names for _, names in uses)),
        tuple(uses),
        max_chars=min(MAX_RENDERED, manifest.max_message_bytes),
    )


# --- the message ----------------------------------------------------------------------------------------
def one_line(text: str) -> str:
    """`text` on one line: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def safe_filename(name: str, default: str = "allegato", *, path: bool = True) -> str:
    """A file name fit for a MIME header and any file system: on one line, without control
    characters or <>:"/\\|?*. `path`: `name` is a path, keep its last part."""
    if path:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = one_line(_UNSAFE_NAME.sub("_", name)).strip(". ")
    return name[:200] or default


def content_type(name: str) -> tuple[str, str]:
    maintype, _, subtype = _CONTENT_TYPES.get(extension(name), "application/octet-stream").partition("/")
    return maintype, subtype


def row_values(manifest: Manifest, row: Row | Mapping[str, str]) -> dict[str, str]:
    """The values a row renders with: a Row or its values (optional columns default to '',
    as stores may drop empty strings)."""
    values = row if isinstance(row, Mapping) else row.values
    return {**dict.fromkeys(manifest.optional_keys, ""), **values}


def render_message(
    manifest: Manifest,
    row: Row | Mapping[str, str],
    *,
    mailbox: str,
    message_id: str,
    attachments: Iterable[tuple[str, bytes]] = (),
    date: datetime,
    templates: Templates | None = None,
    test_to: str | None = None,
) -> bytes:
    """The PEC to submit for one row (or one group: its values with `righe`, see
    grouping.group_values): RFC 5322 bytes with CRLF line ends. The manifest's `cc`, when set,
    is the message's Cc (one copy, the same for every message).

    `attachments` are the fixed and per-recipient files, already read, as (file name, bytes);
    the generated PDF (manifest.pdf) is added after them. `test_to`: a test send, the same
    message to that address alone (no Cc), its subject marked [PROVA]. RenderError when this row
    cannot be rendered; ValueError for a wrong mailbox, Message-ID or date.
    """
    problem = address_problem(mailbox)
    if problem:
        raise ValueError(f"mailbox {mailbox!r} is not a valid address: {problem}")
    if not _MESSAGE_ID.match(message_id):
        raise ValueError(f"{message_id!r} is not a Message-ID like <id@domain>")
    if date.tzinfo is None:
        raise ValueError("the message date needs a time zone")
    values = row_values(manifest, row)
    recipient = manifest.address_of(values)
    problem = address_problem(recipient)
    if problem:
        raise RenderError("to", f"{recipient!r} is not a valid address: {problem}")
    rendered = (templates or compile_templates(manifest)).render(values)
    subject = rendered.subject
    if test_to is not None:
        problem = address_problem(test_to)
        if problem:
            raise ValueError(f"{test_to!r} is not a valid address: {problem}")
        recipient, subject = test_to, f"{TEST_MARK} {subject}"

    message = EmailMessage(policy=SMTP)
    message["From"] = mailbox
    message["To"] = recipient
    if manifest.cc and test_to is None:
        message["Cc"] = manifest.cc
    _set_subject(message, subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["X-TipoRicevuta"] = manifest.receipt_type
    if test_to is not None:
        message["X-Pecflow-Prova"] = "invio di prova (test send)"
    message.set_content(rendered.text, cte="quoted-printable")
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    for name, content in attachments:
        maintype, subtype = content_type(name)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=safe_filename(name))
    if rendered.pdf_text is not None:
        message.add_attachment(
            text_pdf(rendered.pdf_text), maintype="application", subtype="pdf", filename=rendered.pdf_filename
        )
    return message.as_bytes()


def _set_subject(message: EmailMessage, subject: str) -> None:
    """The Subject, folded by us: the email package's own folding adds or loses spaces around
    encoded words and long words. Plain ASCII is folded at its spaces; anything else (or a
    word too long for a line) goes as RFC 2047 encoded words cut between characters."""
    plain = subject.isascii() and max(map(len, subject.split(" "))) <= 60
    encoded = Header(subject, "us-ascii" if plain else "utf-8", maxlinelen=76, header_name="Subject").encode(
        linesep="\r\n"
    )
    message.set_raw("Subject", encoded)  # already folded: stored and written as it is


# --- how big it will be --------------------------------------------------------------------------------
_HIGH = bytes(range(128, 256))
_HEADERS = 1500  # headers, MIME boundaries and part headers of the message itself
_PART = 300  # headers of one attachment part


def base64_size(size: int) -> int:
    """Bytes of `size` bytes once base64-encoded in 76-character CRLF lines."""
    encoded = (size + 2) // 3 * 4
    return encoded + (encoded + 75) // 76 * 2


def _qp_size(text: str) -> int:
    raw = text.encode("utf-8")
    escaped = len(raw) - len(raw.translate(None, _HIGH)) + raw.count(b"=")
    return len(raw) + 2 * escaped + 3 * (len(raw) // 72) + text.count("\n")


def estimated_size(rendered: Rendered, attachment_sizes: Iterable[int] = (), pdf_size: int = 0) -> int:
    """An upper estimate of the submitted message's size, before the attachments are read."""
    size = _HEADERS + 3 * len(rendered.subject.encode("utf-8")) + _qp_size(rendered.text)
    if rendered.html is not None:
        size += _qp_size(rendered.html)
    for part in [*attachment_sizes, *([pdf_size] if rendered.pdf_text is not None else [])]:
        size += _PART + base64_size(part)
    return size
