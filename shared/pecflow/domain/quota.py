"""Provider sending quotas as pure rate math (docs/architecture.md, flow 4). No I/O.

A `QuotaPolicy` says how many messages one sending mailbox may hand to its provider per window:

- rolling: at most `limit` sends in ANY half-open interval [s, s + window) — sends leave the
  count one window after they happened (Aruba: 250 per 20 minutes);
- fixed: at most `limit` sends per aligned window — epoch multiples of the window, or calendar
  days from local midnight when `timezone` is set (Gmail preset: 100 per day, Europe/Rome).

The times here are the moments a sender takes a slot, just before SMTP. The provider counts the
message a little later, when it arrives: `margin_seconds` (the longest a send may take after its
slot, e.g. the sender's SMTP time budget) widens every decision so that arrival times also stay
within the limit, wherever in [slot, slot + margin) they fall. `violations` measures the
provider's own windows (no margin): use it on arrival times to prove a schedule was legal.

Everything is decided with the same comparisons (`a < b + window`), so the functions agree with
each other exactly, in floating point too: `next_slot` is the earliest time `admit` allows, and
whatever `admit` allows never makes `violations` report a window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple

MB = 1_000_000
DAY = 86_400.0


# --- helpers ----------------------------------------------------------------------------------------
def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_time(now: float) -> None:
    if not _finite(now):
        raise ValueError(f"now must be a finite number of seconds (got {now!r})")


def _duration(seconds: float) -> str:
    for unit, size in (("day", DAY), ("hour", 3600.0), ("minute", 60.0)):
        if seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}s" if n != 1 else unit
    return f"{seconds:g} s"


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} bytes"


# --- calendar days ----------------------------------------------------------------------------------
def _day_bounds(zone: str, t: float) -> tuple[float, float]:
    """[local midnight, next local midnight) around t, in epoch seconds."""
    offset = _offset_function(zone)
    day = math.floor((t + offset(t)) / DAY)
    start, end = _midnight(zone, day), _midnight(zone, day + 1)
    while start > t:
        day -= 1
        start, end = _midnight(zone, day), start
    while end <= t:
        day += 1
        start, end = end, _midnight(zone, day + 1)
    return start, end


@lru_cache(maxsize=4096)
def _midnight(zone: str, day: int) -> float:
    """The instant local midnight begins day number `day` (days since 1970-01-01, local)."""
    offset = _offset_function(zone)
    local = day * DAY
    utc = local - offset(local)
    for _ in range(3):  # the offset at the instant itself, not at the guess
        better = local - offset(utc)
        if better == utc:
            break
        utc = better
    return utc


@cache
def _offset_function(zone: str) -> Callable[[float], float]:
    """Seconds east of UTC at an instant. From the system's tz database (zoneinfo); Europe/Rome
    also without one (the EU rule since 1996), so the gmail preset never depends on tzdata."""
    try:
        from zoneinfo import ZoneInfo

        info = ZoneInfo(zone)
    except Exception:  # ZoneInfoNotFoundError, a bad key, or no tz database at all
        if zone == "Europe/Rome":
            return _rome_offset
        raise ValueError(f"unknown time zone {zone!r}") from None
    # typeshed: utcoffset() may be None, never for a datetime made with a zone
    return lambda t: datetime.fromtimestamp(t, info).utcoffset().total_seconds()  # type: ignore[union-attr]


def _rome_offset(t: float) -> float:
    """CET/CEST by the EU rule: summer time from 01:00 UTC on the last Sunday of March to
    01:00 UTC on the last Sunday of October."""
    year = datetime.fromtimestamp(t, UTC).year
    return 7200.0 if _eu_switch(year, 3) <= t < _eu_switch(year, 10) else 3600.0


@lru_cache(maxsize=256)
def _eu_switch(year: int, month: int) -> float:
    last = date(year, month, 31)
    sunday = last.toordinal() - (last.weekday() + 1) % 7
    return (sunday - date(1970, 1, 1).toordinal()) * DAY + 3600.0


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    limit: int  # sends per window, at least 1
    window_seconds: float
    rolling: bool = True  # False: aligned (fixed) windows
    max_message_bytes: int | None = None  # the provider's message size limit (encoded bytes)
    size_divided_by_recipients: bool = False  # the size limit is shared by all the recipients
    margin_seconds: float = 0.0  # longest time from a slot to the provider's count
    timezone: str | None = None  # fixed windows only: calendar days in this zone
    pace_seconds: float = 0.0  # at least this between two slots (spreads a window's
    # burst at the speed the senders can actually send)

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be a whole number of sends, at least 1 (got {self.limit!r})")
        if not _finite(self.window_seconds) or self.window_seconds <= 0:
            raise ValueError(
                f"window_seconds must be a positive number of seconds (got {self.window_seconds!r})"
            )
        if not _finite(self.margin_seconds) or not 0 <= self.margin_seconds < self.window_seconds:
            raise ValueError(
                f"margin_seconds must be at least 0 and shorter than the window (got {self.margin_seconds!r})"
            )
        if not _finite(self.pace_seconds) or not 0 <= self.pace_seconds * self.limit <= self.window_seconds:
            raise ValueError(
                f"pace_seconds must be at least 0 and fit `limit` slots in a window "
                f"(got {self.pace_seconds!r})"
            )
        if self.max_message_bytes is not None and (
            isinstance(self.max_message_bytes, bool)
            or not isinstance(self.max_message_bytes, int)
            or self.max_message_bytes < 1
        ):
            raise ValueError(
                f"max_message_bytes must be a positive whole number (got {self.max_message_bytes!r})"
            )
        if self.size_divided_by_recipients and self.max_message_bytes is None:
            raise ValueError("size_divided_by_recipients needs max_message_bytes")
        if self.timezone is not None:
            if self.rolling:
                raise ValueError("timezone applies to fixed windows only (rolling=False)")
            if self.window_seconds != DAY:
                raise ValueError(
                    "with a timezone the fixed window is one calendar day: window_seconds must be 86400"
                )
            if self.margin_seconds >= DAY - 3600:
                raise ValueError("margin_seconds must be shorter than the shortest calendar day (23 hours)")
            _offset_function(self.timezone)  # unknown zones fail here, not at the first send

    @property
    def span(self) -> float:
        """How far a slot reaches when deciding: the window plus the margin."""
        return self.window_seconds + self.margin_seconds

    def describe(self) -> str:
        if self.timezone:
            return f"{self.limit} per calendar day ({self.timezone})"
        return f"{self.limit} per {_duration(self.window_seconds)} {'rolling' if self.rolling else 'fixed'}"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a send may start now; if not, how long until the earliest slot. True or false
    as `allowed`.

    `at` is the slot: when allowed, the time the slot was taken (never start the send before
    it; give it back with `RateLimiter.release(mailbox, at)` if the send does not happen); when
    refused, the earliest time a send could be allowed (None when a limiter gave up on
    contention: try again after `wait_seconds`)."""

    allowed: bool
    wait_seconds: float
    at: float | None = None

    def __bool__(self) -> bool:
        return self.allowed


class Fit(NamedTuple):
    """`ok, reason = fits(...)`; true or false as `ok`."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


# --- presets ----------------------------------------------------------------------------------------
# Only values a provider documents, read conservatively. Sources:
#   aruba: 250 messages per 20 minutes (the founders' figure, issue 6);
#     outgoing messages up to 100 MB including attachments, the limit divided by the number of
#     recipients (guide.pec.it, "dimensione massima di un messaggio in uscita").
#   gmail: 100 per day, counted per Europe/Rome calendar day (the founders' figure: far under
#     Gmail's own daily limits, so even two back-to-back days, 200 in 24 h, stay within them);
#     messages up to 25 MB.
#   legalmail: InfoCert's contract (Condizioni Generali Legalmail, art. 5, quoted on
#     help.infocert.it) guarantees 6 messages per minute and answers "550 ... Too much traffic
#     from this sender" beyond; rolling is the strict reading of "per minute". No size limit is
#     published: the legal minimum every provider must accept (DM 2 Nov 2005: 30 MB
#     multiplied by the number of recipients) is used. The same article forbids automated sending
#     without an agreement: pecflow campaigns from a Legalmail box need one.
#   namirial, poste: no published sending rate was found, so no preset: guessing would either
#     waste the quota or exceed it. Use "custom" with the figures agreed with the provider.
PRESETS: dict[str, QuotaPolicy] = {
    "aruba": QuotaPolicy(
        250, 20 * 60.0, rolling=True, max_message_bytes=100 * MB, size_divided_by_recipients=True
    ),
    "gmail": QuotaPolicy(100, DAY, rolling=False, timezone="Europe/Rome", max_message_bytes=25 * MB),
    "legalmail": QuotaPolicy(
        6, 60.0, rolling=True, max_message_bytes=30 * MB, size_divided_by_recipients=True
    ),
}
_FIELDS = frozenset(f.name for f in fields(QuotaPolicy))


@dataclass(frozen=True, slots=True)
class ProviderTerms:
    """What a provider publishes about automated and mass sending, as people must read it before
    a campaign: shown by `pecflow campaign validate` and in the README. `needs_agreement`: the
    contract forbids automated sending without an agreement with the provider."""

    provider: str
    terms: tuple[str, ...]
    source: str
    needs_agreement: bool = False


# One per preset (a test keeps them together). Where a figure is the founders' rather than the
# provider's, it says so.
TERMS: dict[str, ProviderTerms] = {
    "aruba": ProviderTerms(
        "Aruba PEC",
        (
            "250 messages per 20 minutes from one mailbox (the figure pecflow paces to)",
            "at most 500 recipients per message",
            "a message up to 100 MB with its attachments, the limit shared among its recipients "
            "(a copy in cc halves it)",
        ),
        "guide.pec.it: limiti di invio e dimensione massima di un messaggio in uscita",
    ),
    "gmail": ProviderTerms(
        "Gmail (not a PEC provider: for tests and ordinary e-mail)",
        (
            "pecflow sends at most 100 messages per calendar day (Europe/Rome), far under Gmail's own limits",
            "a message up to 25 MB with its attachments",
        ),
        "support.google.com/mail: limiti di invio di Gmail",
    ),
    "legalmail": ProviderTerms(
        "Legalmail (InfoCert)",
        (
            "the contract forbids automated sending without the user's direct intervention, unless "
            "agreed with InfoCert: agree on it before the first campaign from a Legalmail mailbox",
            "6 messages per minute guaranteed; beyond, the server answers '550 Too much traffic from "
            "this sender'",
            "no published size limit: pecflow uses the legal minimum, 30 MB per message",
        ),
        "Condizioni Generali Legalmail, art. 5 (help.infocert.it)",
        needs_agreement=True,
    ),
}
SDI_TERMS = ProviderTerms(
    "SdI (Sistema di Interscambio) over PEC",
    ("an invoice message to the SdI up to 30 MB",),
    "fatturapa.gov.it: specifiche tecniche, canale PEC",
)


def terms_of(preset: str) -> ProviderTerms | None:
    """The provider terms of a preset (`aruba`, `legalmail`, `gmail`); None for `custom:` and
    unknown names (the terms agreed with that provider apply)."""
    return TERMS.get((preset or "").strip().lower())


# what a mailbox's domain tells of its provider, when no preset is given
_DOMAINS = (
    ("legalmail.it", "legalmail"),
    ("pec.it", "aruba"),
    ("arubapec.it", "aruba"),
    ("gmail.com", "gmail"),
)


def preset_of_domain(address: str) -> str | None:
    """The preset of a mailbox on a provider's own domain (mario@legalmail.it → legalmail);
    None for a company's own domain, where only the mailbox's configuration can tell."""
    domain = address.rpartition("@")[2].lower()
    return next(
        (preset for suffix, preset in _DOMAINS if domain == suffix or domain.endswith("." + suffix)), None
    )


def policy_from(preset: str, **overrides: Any) -> QuotaPolicy:
    """A preset by name, with any field overridden (e.g. `margin_seconds=10`), or
    `policy_from("custom", limit=N, window_seconds=S, rolling=...)`."""
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise ValueError(f"unknown quota fields: {', '.join(sorted(unknown))}")
    name = (preset or "").strip().lower()
    if name == "custom":
        missing = [f for f in ("limit", "window_seconds") if f not in overrides]
        if missing:
            raise ValueError(f"a custom quota needs {' and '.join(missing)}")
        return QuotaPolicy(**overrides)
    if name not in PRESETS:
        raise ValueError(f"unknown quota preset {preset!r}: one of {', '.join([*PRESETS, 'custom'])}")
    return replace(PRESETS[name], **overrides) if overrides else PRESETS[name]


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}


def policy_from_spec(spec: str, **overrides: Any) -> QuotaPolicy:
    """A mailbox's quota setting: a preset name (`aruba`, `gmail`, `legalmail`) or
    `custom:N/WINDOW` with WINDOW like `600s`, `20m`, `1h`, `1d`, rolling unless followed by
    `,fixed` — e.g. `custom:50/10m` or `custom:500/1d,fixed`."""
    text = (spec or "").strip().lower()
    if not text.startswith("custom:"):
        return policy_from(text, **overrides)
    body, _, shape = text[len("custom:") :].partition(",")
    if shape not in ("", "rolling", "fixed"):
        raise ValueError(f"quota {spec!r}: after the comma, 'fixed' or 'rolling' (got {shape!r})")
    limit, slash, window = body.partition("/")
    try:
        count = int(limit)
        unit = _UNITS[window.strip()[-1:]] if window.strip()[-1:] in _UNITS else 1.0
        number = window.strip()[:-1] if window.strip()[-1:] in _UNITS else window.strip()
        seconds = float(number) * unit
    except (ValueError, KeyError):
        raise ValueError(
            f"quota {spec!r}: expected custom:N/WINDOW, e.g. custom:50/10m or custom:500/1d,fixed"
        ) from None
    if not slash:
        raise ValueError(f"quota {spec!r}: expected custom:N/WINDOW, e.g. custom:50/10m")
    return policy_from("custom", limit=count, window_seconds=seconds, rolling=shape != "fixed", **overrides)


# --- decisions --------------------------------------------------------------------------------------
def next_slot(policy: QuotaPolicy, history: Sequence[float], now: float) -> float:
    """The earliest time >= now at which one more send keeps every window within the limit,
    given the slots already taken (in any order; times after `now` count too)."""
    _check_time(now)
    if policy.rolling:
        return _rolling_next_slot(policy, sorted(map(float, history)), now)
    counts = Counter(start for t in history for start, _ in counting_windows(policy, float(t)))
    return next_slot_for_counts(policy, counts, now)


def admit(policy: QuotaPolicy, history: Sequence[float], now: float) -> Decision:
    slot = next_slot(policy, history, now)
    if slot == now:
        return Decision(True, 0.0, now)
    return Decision(False, slot - now, slot)


def prune(policy: QuotaPolicy, history: Iterable[float], now: float) -> list[float]:
    """The slots that can still matter for a decision at any time >= now, sorted. Dropping the
    rest changes no decision from `now` on."""
    if policy.rolling:
        span = policy.span
        return sorted(t for t in map(float, history) if now < t + span)
    return sorted(t for t in map(float, history) if counting_windows(policy, t)[-1][1] > now)


def next_slot_for_counts(policy: QuotaPolicy, counts: Mapping[float, int], now: float) -> float:
    """Fixed windows from counters: `counts` maps a window's start to the slots counted in it
    (each slot counts in every window of `counting_windows`). The earliest time >= now whose
    windows all have room."""
    _check_time(now)
    if policy.rolling:
        raise ValueError("counters describe fixed windows only")
    slot = now
    while True:
        windows = counting_windows(policy, slot)
        full = [w for w in windows if counts.get(w[0], 0) >= policy.limit]
        if not full:
            return slot
        # Every time before the end of a full window is refused too: in its own window, or
        # (the margin being shorter than any window) reaching into this one.
        slot = full[0][1]


# --- windows ----------------------------------------------------------------------------------------
def window_of(policy: QuotaPolicy, t: float) -> tuple[float, float]:
    """The aligned window [start, end) holding t (fixed policies)."""
    if policy.rolling:
        raise ValueError("rolling windows are not aligned: every interval of the window's length counts")
    if policy.timezone is not None:
        return _day_bounds(policy.timezone, t)
    width = policy.window_seconds
    k = math.floor(t / width)
    while (k + 1) * width <= t:
        k += 1
    while k * width > t:
        k -= 1
    return k * width, (k + 1) * width


def counting_windows(policy: QuotaPolicy, t: float) -> tuple[tuple[float, float], ...]:
    """The aligned windows a slot taken at t counts in: its own and, when the margin reaches
    past its end, the next (the provider may count the message there)."""
    own = window_of(policy, t)
    if policy.margin_seconds:
        reached = window_of(policy, t + policy.margin_seconds)
        if reached != own:
            return own, reached
    return (own,)


def violations(policy: QuotaPolicy, send_times: Iterable[float]) -> list[float]:
    """Starts of the provider's windows (no margin) holding more than `limit` sends. Rolling:
    every send time s such that [s, s + window) holds more than `limit` sends. Empty: the
    schedule was legal."""
    times = sorted(map(float, send_times))
    limit = policy.limit
    if policy.rolling:
        width = policy.window_seconds
        starts = {times[i] for i in range(len(times) - limit) if times[i + limit] < times[i] + width}
        return sorted(starts)
    counts = Counter(window_of(policy, t)[0] for t in times)
    return sorted(start for start, n in counts.items() if n > limit)


# --- message size -----------------------------------------------------------------------------------
def size_budget(policy: QuotaPolicy, recipients: int = 1) -> int | None:
    """The largest message (encoded bytes, as the provider receives it) for this many
    recipients; None: no limit known."""
    if isinstance(recipients, bool) or not isinstance(recipients, int) or recipients < 1:
        raise ValueError(f"recipients must be at least 1 (got {recipients!r})")
    if policy.max_message_bytes is None:
        return None
    if policy.size_divided_by_recipients:
        return policy.max_message_bytes // recipients
    return policy.max_message_bytes


def fits(policy: QuotaPolicy, message_bytes: int, recipients: int = 1) -> Fit:
    """Whether a message of `message_bytes` (the whole encoded message: base64 attachments are
    a third larger than the files) to `recipients` is within the provider's size limit."""
    if message_bytes < 0:
        raise ValueError("message_bytes cannot be negative")
    budget = size_budget(policy, recipients)
    if budget is None or message_bytes <= budget:
        return Fit(True, "")
    reason = f"the message is {_size(message_bytes)}, over the {_size(budget)} the provider accepts"
    if policy.size_divided_by_recipients and recipients > 1:
        assert policy.max_message_bytes is not None  # a budget comes from it
        reason += f" ({_size(policy.max_message_bytes)} divided by {recipients} recipients)"
    return Fit(False, reason)


# --- rolling windows --------------------------------------------------------------------------------
def _rolling_next_slot(policy: QuotaPolicy, times: list[float], now: float) -> float:
    """A run of `limit` consecutive slots (times[j] .. times[j+limit-1]) that fits in one
    window blocks exactly the T with `last < T + span` and `T < first + span` (T would make
    limit + 1 in one window). Those zones start and end in the order of the runs, so one sweep
    from `now` finds the first time outside all of them."""
    limit, span = policy.limit, policy.span
    slot = now
    for j in range(len(times) - limit + 1):
        first, last = times[j], times[j + limit - 1]
        release = first + span
        if not last < release:  # the run does not fit in one window: it blocks nothing
            continue
        if release <= slot:  # its zone is behind us
            continue
        if last < slot + span:  # inside its zone: jump to its end
            slot = release
        else:  # before its zone, and before every later run's
            break
    return slot


# --- the deployed sending policy ----------------------------------------------------------------------
LATE_FOR_SLOT_SECONDS = 8  # a reserved slot used later than this is given back and a new one taken
SEND_MARGIN_SECONDS = 15.0  # a slot used up to LATE_FOR_SLOT_SECONDS late, plus up to 7 s of SMTP
# submission: the provider counts a message when it arrives
SEND_PACE_SECONDS = 0.5  # reserved slots at least this far apart: the senders keep up with them


def sending_policy(spec: str) -> QuotaPolicy:
    """The policy the senders apply to a mailbox whose quota setting is `spec`: the provider's
    limit with the margin and the pace above (both scaled down for very short windows)."""
    base = policy_from_spec(spec)
    return policy_from_spec(
        spec,
        margin_seconds=min(SEND_MARGIN_SECONDS, base.window_seconds / 4),
        pace_seconds=min(SEND_PACE_SECONDS, base.window_seconds / base.limit / 2),
    )
