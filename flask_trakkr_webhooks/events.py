"""Event types, the standard payload, generated summaries and sample events.

One table says everything the package says about an event type: its description, its
one-line summary, its chat wording (title, tone, key figures, link) and its sample data.

* :class:`EventType`: one row of that table; :data:`BUILTIN_EVENT_TYPES` holds the five
  built-in rows, and adding a built-in type is one more row (plus its tests);
* :class:`EventTypes`: the registry an app uses, a ``Mapping`` of name -> description that
  hosts extend with :meth:`EventTypes.register` (the same rows as the built-in ones);
* :func:`build_payload`: the contract's wire-format payload from what ``emit`` gets;
* :func:`summarize`: a human-readable line per event;
* :func:`sample_data` and :func:`sample_payload`: the sample events sent by
  ``POST /webhooks/<id>/test`` and the fixed payloads of docs and tests.

The chat wording is platform-neutral: :mod:`.providers.content` hands a :class:`ChatView`
(the event with display-ready values) to an event type's ``chat`` function, which returns
a :class:`ChatText`. So this module stays pure (stdlib and :mod:`.ids` only) and the value
rendering (numbers, booleans, URLs) stays with the formatters.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, TypeGuard
from uuid import UUID

from .ids import canonical_uuid, isoformat

_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,62}\Z")


def validate_event_type_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is lowercase ``[a-z0-9_.]``, 1-63 chars, starting with a letter."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid event type name {name!r}: use 1-63 lowercase letters, digits, '_' or '.', starting with a letter"
        )


# -- the table's row ------------------------------------------------------------------

#: Tones a formatter may colour: a rise or gain is good, a drop or loss is bad.
GOOD, BAD, NEUTRAL = "good", "bad", "neutral"
#: Every tone a row may give; anything else is shown as neutral.
TONES = (GOOD, BAD, NEUTRAL)

#: A summary sentence from the brand's display name and the event's data; must not raise.
SummaryFunction = Callable[[str, Mapping[str, Any]], str]


@dataclass(frozen=True)
class ChatView:
    """One event as an event type's chat wording sees it (built by :mod:`.providers.content`).

    ``text`` renders a scalar as stripped display text (numbers without float noise,
    booleans as Yes/No) and gives ``""`` for None, lists and objects; ``host`` gives the host
    name of a safe absolute http(s) URL, else ``""``.
    """

    event_type: str
    event_label: str
    brand: str
    data: Mapping[str, Any]
    text: Callable[[Any], str]
    host: Callable[[Any], str]

    def get(self, key: str) -> str:
        """The display text of ``data[key]`` (``""`` when missing or not a scalar)."""
        return self.text(self.data.get(key))


@dataclass(frozen=True)
class ChatText:
    """What a chat message says about one event: its title (emoji included), tone, own key
    figures as ``(label, value)`` pairs, and the data keys those already cover (any other
    top-level scalar field is shown after them as a generic figure)."""

    title: str
    tone: str = NEUTRAL
    facts: tuple[tuple[str, str], ...] = ()
    covers: frozenset[str] = frozenset()


#: An event type's chat wording: the event's :class:`ChatView` in, its :class:`ChatText` out.
ChatBuilder = Callable[[ChatView], ChatText]


@dataclass(frozen=True)
class EventType:
    """One event type: everything the package says about it.

    ``summary`` writes the payload's ``summary`` line (None: ``"<brand>: <description>"``);
    ``chat`` writes the Slack/Discord/Teams title, tone and figures (None: the generic
    wording of :func:`chat_wording`); ``link`` is the ``(data key, label)`` of the message's
    button; ``data`` is the sample ``data`` of test events (None: a small generic object).
    """

    name: str
    description: str
    summary: SummaryFunction | None = None
    chat: ChatBuilder | None = None
    link: tuple[str, str] | None = None
    # A dict is not hashable; rows are compared, never hashed, but keep hash() working.
    data: Mapping[str, Any] | None = field(default=None, hash=False)


# -- wording helpers (summaries work on raw data, chat wording on ChatView text) -------

_PLATFORMS = {
    "chatgpt": "ChatGPT",
    "openai": "ChatGPT",
    "perplexity": "Perplexity",
    "gemini": "Gemini",
    "claude": "Claude",
    "copilot": "Copilot",
    "google_ai_overviews": "Google AI Overviews",
    "ai_overviews": "Google AI Overviews",
    "grok": "Grok",
    "deepseek": "DeepSeek",
    "meta_ai": "Meta AI",
}


def _finite(value: object) -> TypeGuard[int | float]:
    """True for a finite int or float that is not a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _number(value: Any) -> float | None:
    if not _finite(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past float's range: no sensible score
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _score(value: float) -> str:
    return f"{value:.1f}"


def _present(*facts: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``(label, value)`` pairs whose value is not empty, in order."""
    return tuple((label, value) for label, value in facts if value)


# -- visibility_changed ----------------------------------------------------------------


def _visibility_summary(who: str, data: Mapping[str, Any]) -> str:
    prev, cur = _number(data.get("previous_score")), _number(data.get("current_score"))
    change = _number(data.get("change_percent"))
    if change is None and prev and cur is not None:
        change = (cur - prev) / prev * 100
    direction = _text(data.get("direction")).lower()
    if direction not in ("up", "down"):
        if change:
            direction = "up" if change > 0 else "down"
        elif prev is not None and cur is not None and prev != cur:
            direction = "up" if cur > prev else "down"
        else:
            direction = ""
    scores = f" ({_score(prev)} \u2192 {_score(cur)})" if prev is not None and cur is not None else ""
    if not direction:
        if prev is not None and cur is not None and prev == cur:
            return f"{who}'s visibility is unchanged at {_score(cur)}"
        return f"{who}'s visibility changed{scores}"
    verb = "rose" if direction == "up" else "fell"
    amount = f" {abs(change):.1f}%" if change is not None else ""
    return f"{who}'s visibility {verb}{amount}{scores}"


def _chat_direction(data: Mapping[str, Any]) -> str:
    """``up``, ``down`` or ``""`` from ``direction``, else ``change_percent``, else the scores."""
    raw = data.get("direction")
    if isinstance(raw, str) and raw.strip().lower() in ("up", "down"):
        return raw.strip().lower()
    change = data.get("change_percent")
    if _finite(change) and change != 0:
        return "up" if change > 0 else "down"
    prev, cur = data.get("previous_score"), data.get("current_score")
    if _finite(prev) and _finite(cur) and prev != cur:
        return "up" if cur > prev else "down"
    return ""


def _percent(view: ChatView, value: Any) -> str:
    if _finite(value):
        sign = "+" if value > 0 else ("\u2212" if value < 0 else "")
        return f"{sign}{view.text(abs(value))}%"
    text = view.text(value)
    return text if not text or text.endswith("%") else text + "%"


def _visibility_chat(view: ChatView) -> ChatText:
    direction = _chat_direction(view.data)
    arrow = {"up": "\u25b2 ", "down": "\u25bc "}.get(direction, "")
    change = _percent(view, view.data.get("change_percent"))
    facts = _present(
        ("Previous score", view.get("previous_score")),
        ("Current score", view.get("current_score")),
        ("Change", arrow + change if change else ""),
        ("Direction", {"up": "Up", "down": "Down"}.get(direction, "")),
    )
    if direction == "up":
        title, tone = f"\U0001f4c8 Visibility up for {view.brand}", GOOD  # chart increasing
    elif direction == "down":
        title, tone = f"\U0001f4c9 Visibility down for {view.brand}", BAD  # chart decreasing
    else:
        title, tone = f"\U0001f504 Visibility changed for {view.brand}", NEUTRAL  # arrows: direction unknown
    return ChatText(title, tone, facts, frozenset({"previous_score", "current_score", "change_percent", "direction"}))


# -- report_completed ------------------------------------------------------------------


def _report_summary(who: str, data: Mapping[str, Any]) -> str:
    name = _text(data.get("report_name"))
    return f"New report for {who}: {name}" if name else f"A new research report for {who} is ready"


def _report_chat(view: ChatView) -> ChatText:
    name = view.get("report_name")
    facts = _present(("Report", name), ("Report ID", view.get("report_id")))
    # bar chart
    title = f"\U0001f4ca Report ready: {name}" if name else f"\U0001f4ca New report for {view.brand}"
    return ChatText(title, GOOD, facts, frozenset({"report_name", "report_id", "report_url"}))


# -- competitor_added ------------------------------------------------------------------


def _competitor_summary(who: str, data: Mapping[str, Any]) -> str:
    name, domain = _text(data.get("competitor_name")), _text(data.get("competitor_domain"))
    rival = f"{name} ({domain})" if name and domain else name or domain
    return f"New competitor for {who}: {rival}" if rival else f"A new competitor was detected for {who}"


_DETECTED_KEYS = ("detected_by", "detection_method", "how_detected")


def _competitor_chat(view: ChatView) -> ChatText:
    name, domain = view.get("competitor_name"), view.get("competitor_domain")
    how = next((view.get(key) for key in _DETECTED_KEYS if view.get(key)), "")
    facts = _present(("Competitor", name), ("Domain", domain), ("Detected by", how))
    who = name or domain
    title = f"\U0001f440 New competitor for {view.brand}" + (f": {who}" if who else "")  # eyes
    # competitor_url is the link, yet still listed as a figure: it is not in covers.
    return ChatText(title, NEUTRAL, facts, frozenset({"competitor_name", "competitor_domain", *_DETECTED_KEYS}))


# -- citation_gained / citation_lost ---------------------------------------------------


def _citation_summary(who: str, data: Mapping[str, Any], verb: str) -> str:
    source = _text(data.get("source_domain")) or _text(data.get("source_url"))
    platform = _text(data.get("platform"))
    platform = _PLATFORMS.get(platform.lower(), platform)
    where = f" on {platform}" if platform else ""
    return f"{who} {verb} a citation from {source}{where}" if source else f"{who} {verb} a citation{where}"


def _citation_gained_summary(who: str, data: Mapping[str, Any]) -> str:
    return _citation_summary(who, data, "gained")


def _citation_lost_summary(who: str, data: Mapping[str, Any]) -> str:
    return _citation_summary(who, data, "lost")


def _citation_chat(view: ChatView, heading: str, tone: str) -> ChatText:
    url = view.get("source_url")
    domain = view.get("source_domain") or view.host(url)
    facts = _present(
        ("Source", domain),
        ("Platform", view.get("platform")),
        ("Prompt", view.get("prompt")),
        ("Source URL", url),
    )
    title = f"{heading} for {view.brand}" + (f": {domain}" if domain else "")
    return ChatText(title, tone, facts, frozenset({"source_url", "source_domain", "platform", "prompt"}))


def _citation_gained_chat(view: ChatView) -> ChatText:
    return _citation_chat(view, "\u2705 New citation", GOOD)  # check mark


def _citation_lost_chat(view: ChatView) -> ChatText:
    return _citation_chat(view, "\u26a0\ufe0f Citation lost", BAD)  # warning sign


# -- wording for any type (the default, and what hosts describe with keywords) ---------

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def chat_wording(
    *,
    title: str | None = None,
    emoji: str | None = None,
    tone: str | None = None,
    facts: Sequence[tuple[str, str]] | None = None,
) -> ChatBuilder:
    """Chat wording from plain values, for types that need no code; ``ValueError`` if one is wrong.

    ``title`` is a template: ``{brand}`` is the brand's name, ``{event}`` the type's name made
    readable (``keyword.ranked`` -> ``Keyword ranked``) and any other ``{key}`` the display text
    of ``data[key]`` (default ``"{event} for {brand}"``). ``emoji`` goes before it (default a
    bell, ``""`` for none); ``tone`` is ``good``, ``bad`` or ``neutral`` (default);
    ``facts`` are ``(label, data key)`` pairs shown first, skipping empty values.
    """
    template = "{event} for {brand}" if title is None else title
    mark = "\U0001f514" if emoji is None else emoji  # bell
    colour = NEUTRAL if tone is None else tone
    if not isinstance(template, str) or not template.strip():
        raise ValueError("title must be a non-empty string (a template such as '{event} for {brand}')")
    if not isinstance(mark, str):
        raise ValueError("emoji must be a string")
    if colour not in TONES:
        raise ValueError(f"tone must be one of {', '.join(TONES)}, not {colour!r}")
    pairs = tuple(facts or ())
    if not all(_is_pair(pair) for pair in pairs):
        raise ValueError("facts must be (label, data key) pairs of non-empty strings")
    covers = frozenset(key for _, key in pairs)

    def build(view: ChatView) -> ChatText:
        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "brand":
                return view.brand
            if key == "event":
                return view.event_label
            return view.get(key)

        text = _PLACEHOLDER.sub(fill, template)
        shown = _present(*((label, view.get(key)) for label, key in pairs))
        return ChatText(f"{mark} {text}" if mark else text, colour, shown, covers)

    return build


#: The wording of a type without its own: "🔔 <Type name> for <brand>", neutral.
GENERIC_CHAT: ChatBuilder = chat_wording()


def _is_pair(value: object) -> bool:
    """True for a tuple of two non-empty strings."""
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(part, str) and part for part in value)


# -- the built-in table -----------------------------------------------------------------

#: The product page's five event types. A new built-in type is one more row (and its tests).
BUILTIN_EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "visibility_changed",
        "Visibility score increased or decreased significantly",
        summary=_visibility_summary,
        chat=_visibility_chat,
        data={"previous_score": 41.0, "current_score": 57.5, "change_percent": 40.2, "direction": "up"},
    ),
    EventType(
        "report_completed",
        "A new research report has been generated",
        summary=_report_summary,
        chat=_report_chat,
        link=("report_url", "View report"),
        data={
            "report_id": "rpt_7f3a9c",
            "report_name": "Weekly AI visibility report",
            "report_url": "https://app.trakkr.example/reports/rpt_7f3a9c",
        },
    ),
    EventType(
        "competitor_added",
        "A new competitor was detected or added",
        summary=_competitor_summary,
        chat=_competitor_chat,
        link=("competitor_url", "View competitor"),
        data={"competitor_name": "Globex", "competitor_domain": "globex.example", "detected_by": "ai_answers"},
    ),
    EventType(
        "citation_gained",
        "Brand gained a new citation source",
        summary=_citation_gained_summary,
        chat=_citation_gained_chat,
        link=("source_url", "View source"),
        data={
            "source_url": "https://news.example/best-tools-2025",
            "source_domain": "news.example",
            "platform": "chatgpt",
            "prompt": "best visibility tracking tools",
        },
    ),
    EventType(
        "citation_lost",
        "Brand lost a citation source",
        summary=_citation_lost_summary,
        chat=_citation_lost_chat,
        link=("source_url", "View source"),
        data={
            "source_url": "https://blog.example/roundup",
            "source_domain": "blog.example",
            "platform": "perplexity",
            "prompt": "alternatives to acme",
        },
    ),
)

_BUILTIN_BY_NAME: dict[str, EventType] = {row.name: row for row in BUILTIN_EVENT_TYPES}


def builtin_spec(name: str) -> EventType | None:
    """The built-in row named ``name``, or None (host types live in an :class:`EventTypes`)."""
    return _BUILTIN_BY_NAME.get(name)


# -- the registry --------------------------------------------------------------------------


class EventTypes(Mapping[str, str]):
    """The event types an app knows: a ``Mapping`` of name -> description, in registration
    order (built-in first), whose rows (:meth:`spec`) carry the summary, wording and sample data.

    ``EventTypes.builtin()`` gives a fresh registry of the five built-in types; hosts add
    theirs with :meth:`register` (or :meth:`add` for a ready :class:`EventType`), the same
    kind of row as the built-in ones.
    """

    def __init__(self, rows: Iterable[EventType] = ()) -> None:
        self._rows: dict[str, EventType] = {}
        for row in rows:
            self.add(row)

    @classmethod
    def builtin(cls) -> EventTypes:
        """A new registry holding the five built-in event types."""
        return cls(BUILTIN_EVENT_TYPES)

    def __getitem__(self, name: str) -> str:
        return self._rows[name].description

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._rows)!r})"

    def spec(self, name: str) -> EventType | None:
        """The row of event type ``name``, or None when it is not registered."""
        return self._rows.get(name)

    def copy(self) -> EventTypes:
        """An independent registry with the same rows (rows are immutable, so they are shared)."""
        clone = type(self)()
        clone._rows = dict(self._rows)
        return clone

    def add(self, row: EventType) -> EventType:
        """Add ``row`` (replacing a row of the same name) and return it as stored.

        Raises ``ValueError`` naming the problem: an invalid name, an empty description, a
        summary or chat that is not callable, a bad link, or sample data that is not JSON.
        """
        row = _checked(row)
        self._rows[row.name] = row
        return row

    def register(
        self,
        name: str,
        description: str,
        *,
        summary: SummaryFunction | None = None,
        sample_data: Mapping[str, Any] | None = None,
        chat: ChatBuilder | None = None,
        link: tuple[str, str] | None = None,
        title: str | None = None,
        emoji: str | None = None,
        tone: str | None = None,
        facts: Sequence[tuple[str, str]] | None = None,
    ) -> EventType:
        """Register event type ``name`` and return its row; ``ValueError`` naming the problem.

        ``summary(who, data) -> str`` writes its summary line (default
        ``"<brand>: <description>"``); ``sample_data`` is the ``data`` of its test events;
        its chat wording is either ``chat`` (a :data:`ChatBuilder`) or the keywords ``title``,
        ``emoji``, ``tone`` and ``facts`` of :func:`chat_wording`; ``link=(data key, label)``
        names its button. Registering a name again (a built-in one too) replaces its
        description and whatever else is given; the rest stays.
        """
        validate_event_type_name(name)
        keywords = {"title": title, "emoji": emoji, "tone": tone, "facts": facts}
        given = [key for key, value in keywords.items() if value is not None]
        if chat is not None and given:
            raise ValueError(f"event type {name!r}: give chat or {'/'.join(given)}, not both")
        if given:
            try:
                chat = chat_wording(title=title, emoji=emoji, tone=tone, facts=facts)
            except ValueError as exc:
                raise ValueError(f"event type {name!r}: {exc}") from None
        current = self._rows.get(name) or EventType(name, description)
        changes: dict[str, Any] = {"description": description}
        for key, value in (("summary", summary), ("chat", chat), ("link", link), ("data", sample_data)):
            if value is not None:
                changes[key] = value
        return self.add(replace(current, **changes))


def _checked(row: EventType) -> EventType:
    """``row`` with its sample data as plain JSON, or ``ValueError`` naming what is wrong."""
    validate_event_type_name(row.name)
    where = f"event type {row.name!r}"
    if not isinstance(row.description, str) or not row.description.strip():
        raise ValueError(f"{where}: description must be a non-empty string")
    if not _callable_or_none(row.summary):
        raise ValueError(f"{where}: summary must be a function (who, data) -> str")
    if not _callable_or_none(row.chat):
        raise ValueError(f"{where}: chat must be a function (ChatView) -> ChatText")
    if row.link is not None and not _is_pair(row.link):
        raise ValueError(f"{where}: link must be a (data key, label) pair of non-empty strings")
    if row.data is None:
        return row
    if not isinstance(row.data, Mapping):
        raise ValueError(f"{where}: sample data must be a mapping (a JSON object)")
    try:
        plain = to_json_value(row.data, path="sample_data")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    return replace(row, data=plain)


def _callable_or_none(value: object) -> bool:
    return value is None or callable(value)


# -- payloads -----------------------------------------------------------------------

#: ``meta.source`` and ``meta.version`` of every payload.
PAYLOAD_SOURCE = "trakkr"
PAYLOAD_VERSION = "1.0"


#: Deepest nesting of objects and arrays ``emit`` accepts in ``data`` and ``workflow`` by
#: default (``TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH``); the object itself is level 1.
MAX_DATA_DEPTH = 32
#: The highest that setting may go: every formatter, the template engine, ``copy.deepcopy``
#: and ``json.dumps`` handle this depth far inside Python's recursion limit.
MAX_DATA_DEPTH_LIMIT = 100
#: Largest integer accepted, in bits (603 decimal digits): below the lowest limit a process
#: may set with ``sys.set_int_max_str_digits`` (640 digits), so ``json.dumps`` always works.
MAX_INT_BITS = 2000
#: The setting named in depth errors.
DEPTH_SETTING = "TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH"


def _where(path: str) -> str:
    """``path`` for an error message, shortened in the middle when data keys make it long."""
    return path if len(path) <= 200 else f"{path[:100]}\u2026{path[-100:]}"


def _check_text(text: str, path: str) -> None:
    """``ValueError`` for a lone surrogate: it cannot be encoded as UTF-8, so nothing could send it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{_where(path)} holds a lone surrogate (invalid Unicode), which cannot be sent as JSON"
        ) from None


def to_json_value(value: Any, *, path: str = "data", max_depth: int = MAX_DATA_DEPTH) -> Any:
    """``value`` as plain JSON types, or ``TypeError``/``ValueError`` naming the bad path.

    Host data often holds datetimes, dates, UUIDs, Decimals, tuples and sets: those are
    converted (ISO 8601, str, float, lists). NaN and infinities, integers over
    :data:`MAX_INT_BITS` bits, strings with lone surrogates and objects or arrays nested more
    than ``max_depth`` levels (``value`` itself is level 1; a cycle is refused this way too)
    raise ``ValueError``: they are not JSON, or not JSON every formatter and receiver handles.
    """
    return _plain(value, path, 0, max_depth)


def _plain(value: Any, path: str, depth: int, max_depth: int) -> Any:
    """:func:`to_json_value` for a value inside ``depth`` containers."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(value, path)
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise ValueError(
                f"{_where(path)} is an integer of more than {MAX_INT_BITS} bits, too large to send as JSON"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{_where(path)} is {value!r}, which is not valid JSON")
        return value
    if isinstance(value, Decimal):
        try:
            number = float(value)
        except (OverflowError, ValueError):  # a signalling NaN refuses float()
            number = math.nan
        return _plain(number if math.isfinite(number) else math.nan, path, depth, max_depth)
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)) and depth >= max_depth:
        # Checked before descending: deep or cyclic data ends here, never in a RecursionError.
        raise ValueError(
            f"{_where(path)} nests deeper than {max_depth} levels of objects and arrays "
            f"(the limit; {DEPTH_SETTING} sets it, at most {MAX_DATA_DEPTH_LIMIT})"
        )
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{_where(path)} has a non-string key {key!r}: JSON object keys are strings")
            _check_text(key, path)
            out[key] = _plain(item, f"{path}.{key}", depth + 1, max_depth)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(item, f"{path}[{i}]", depth + 1, max_depth) for i, item in enumerate(items)]
    raise TypeError(f"{_where(path)} is a {type(value).__name__}, which cannot be sent as JSON")


#: A brand id as the API and ``emit`` take it (shown in messages).
EXAMPLE_BRAND_ID = "8d3f3c1e-6b2a-4f0e-9c7d-2a5b1e4f6a90"


def normalise_brand(brand: Any) -> dict[str, Any]:
    """The payload's ``brand`` object ``{"id", "name", "website"}`` from what a host passes."""
    if not isinstance(brand, Mapping):
        raise TypeError(f"brand must be a mapping with 'id', 'name', 'website', not {type(brand).__name__}")
    given = brand.get("id")
    if given is None or (isinstance(given, str) and not given.strip()):
        raise ValueError(f"brand['id'] is required: the brand's id, a UUID string such as {EXAMPLE_BRAND_ID!r}")
    # Any UUID spelling is accepted and kept as given (webhooks match it canonically).
    brand_id = str(given) if isinstance(given, UUID) else given if canonical_uuid(given) else None
    if brand_id is None:
        # The API keeps webhooks under UUID brand ids only: any other id could never match one.
        shown = repr(given) if len(repr(given)) <= 60 else repr(given)[:57] + "..."
        kind = "" if isinstance(given, str) else f"{type(given).__name__} "
        raise ValueError(
            f"brand['id'] must be a UUID (32 hex digits, hyphens optional, e.g. {EXAMPLE_BRAND_ID!r}), "
            f"got {kind}{shown}"
        )
    out: dict[str, Any] = {"id": brand_id}
    for key in ("name", "website"):
        value = brand.get(key)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"brand[{key!r}] must be a string or None, not {type(value).__name__}")
        if value is not None:
            _check_text(value, f"brand[{key!r}]")
        out[key] = value
    return out


def build_payload(
    event_type: str,
    *,
    event_id: str,
    timestamp: datetime,
    brand: Mapping[str, Any],
    data: Mapping[str, Any],
    workflow: Mapping[str, Any] | None = None,
    summary: str | None = None,
    test: bool = False,
    description: str | None = None,
    spec: EventType | None = None,
    max_depth: int = MAX_DATA_DEPTH,
) -> dict[str, Any]:
    """The standard payload (contract "Wire format"), validated and in plain JSON types.

    ``summary=None`` generates one with :func:`summarize` (``spec`` is a host type's row,
    ``description`` its description; built-in types are found by name). ``test=True`` adds
    ``meta.test: true`` (the ``/test`` route's sample events). ``data`` and ``workflow``
    may nest at most ``max_depth`` levels (see :func:`to_json_value`).
    """
    brand_obj = normalise_brand(brand)
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping (a JSON object), not {type(data).__name__}")
    data_obj = to_json_value(data, path="data", max_depth=max_depth)
    if workflow is not None and not isinstance(workflow, Mapping):
        raise TypeError(f"workflow must be a mapping or None, not {type(workflow).__name__}")
    workflow_obj = to_json_value(workflow, path="workflow", max_depth=max_depth) if workflow is not None else None
    if summary is None:
        summary = summarize(event_type, brand_obj, data_obj, description=description, spec=spec)
    elif not isinstance(summary, str):
        raise TypeError(f"summary must be a string or None, not {type(summary).__name__}")
    else:
        _check_text(summary, "summary")
    meta: dict[str, Any] = {
        "source": PAYLOAD_SOURCE,
        "version": PAYLOAD_VERSION,
        "event_id": event_id,
        # One key per event: a receiver deduplicates retries and redeliveries with it.
        "idempotency_key": event_id,
    }
    if test:
        meta["test"] = True
    return {
        "event": {"id": event_id, "type": event_type, "timestamp": isoformat(timestamp), "data": data_obj},
        "brand": brand_obj,
        "workflow": workflow_obj,
        "summary": summary,
        "meta": meta,
    }


def summarize(
    event_type: str,
    brand: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    description: str | None = None,
    spec: EventType | None = None,
) -> str:
    """A one-line, human-readable summary of an event, e.g.
    ``"Acme's visibility rose 40.2% (41.0 → 57.5)"``. Never raises on odd data.

    The row is ``spec`` (a host type's, from its :class:`EventTypes`), else the built-in row
    named ``event_type``. Types without a summary function (or whose function fails) read
    ``"<brand>: <description>"``.
    """
    who = _text(brand.get("name")) or f"Brand {brand.get('id')}"
    data = data if isinstance(data, Mapping) else {}
    row = spec if spec is not None else builtin_spec(event_type)
    if row is not None and row.summary is not None:
        try:
            line: object = row.summary(who, data)
        except Exception:  # a host's function must not make emit or /test fail: use the fallback
            line = None
        if isinstance(line, str):
            return line
    description = description or (row.description if row is not None else "") or event_type.replace("_", " ")
    return f"{who}: {description}"


# -- sample events ------------------------------------------------------------------

#: Brand name and website of sample events (the id is the webhook's brand).
SAMPLE_BRAND = {"name": "Acme (test)", "website": "https://acme.example"}

#: The brand, event id and time of :func:`sample_payload`'s fixed payloads (docs, golden files).
EXAMPLE_BRAND = {"id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f", "name": "Acme", "website": "https://acme.example"}
EXAMPLE_EVENT_ID = "evt_0123456789abcdef01234567"
EXAMPLE_TIMESTAMP = datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc)


def sample_data(event_type: str, spec: EventType | None = None) -> dict[str, Any]:
    """Realistic ``data`` for a sample ``event_type`` (a fresh copy).

    The row is ``spec``, else the built-in row of that name; a type without sample data gets
    ``{"example": True, "event_type": <name>}``.
    """
    row = spec if spec is not None else builtin_spec(event_type)
    if row is not None and row.data is not None:
        return copy.deepcopy(dict(row.data))
    return {"example": True, "event_type": event_type}


def sample_payload(
    event_type: str = "visibility_changed",
    data: Any = None,
    *,
    summary: Any = None,
    test: bool = True,
    spec: EventType | None = None,
    brand: Mapping[str, Any] | None = None,
    event_id: str = EXAMPLE_EVENT_ID,
    timestamp: datetime = EXAMPLE_TIMESTAMP,
) -> dict[str, Any]:
    """A complete standard payload for ``event_type``, deterministic by default.

    The envelope (event, brand, workflow, meta) is :func:`build_payload`'s, with
    :data:`EXAMPLE_BRAND`, :data:`EXAMPLE_EVENT_ID` and :data:`EXAMPLE_TIMESTAMP` unless given.
    ``data`` defaults to :func:`sample_data`; ``summary`` to :func:`summarize` of that data.
    A ``data`` or ``summary`` given is placed as it is (deep-copied, not validated), so tests
    can push any value, even one ``emit`` refuses, through formatters and templates.
    """
    payload = build_payload(
        event_type,
        event_id=event_id,
        timestamp=timestamp,
        brand=EXAMPLE_BRAND if brand is None else brand,
        data={},  # placed below as given: build_payload would refuse non-JSON test data
        summary="",
        test=test,
        spec=spec,
    )
    chosen = sample_data(event_type, spec) if data is None else copy.deepcopy(data)
    payload["event"]["data"] = chosen
    if summary is None:
        facts = chosen if isinstance(chosen, Mapping) else {}
        payload["summary"] = summarize(event_type, payload["brand"], facts, spec=spec)
    else:
        payload["summary"] = copy.deepcopy(summary)
    return payload
