"""Durations: numbers of seconds and texts such as ``30d``; every bad one refused with its value named."""

from __future__ import annotations

import pytest

from flask_trakkr_webhooks import duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("45", 45.0), ("30d", 2592000.0), ("12h", 43200.0), ("1d12h", 129600.0),
     ("2w", 1209600.0), (" 90 m ", 5400.0), ("0.5h", 1800.0), ("10S", 10.0)],
)  # fmt: skip
def test_duration_parse(value: object, seconds: float) -> None:
    assert duration.parse(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "not a duration: 'abc' (use e.g. '30d', '12h', '1d12h', '90m' or seconds)"),
        ("", "not a duration: '' (use e.g. '30d', '12h', '1d12h', '90m' or seconds)"),
        ("3y", "not a duration: '3y' (use e.g. '30d', '12h', '1d12h', '90m' or seconds)"),
        ("-3d", "not a duration: '-3d' (use e.g. '30d', '12h', '1d12h', '90m' or seconds)"),
        (-1, "a duration must be a finite number of seconds >= 0, got -1"),
        (float("inf"), "a duration must be a finite number of seconds >= 0, got inf"),
        (True, "a duration must be a number of seconds or a text such as '30d', got True"),
        ([1], "a duration must be a number of seconds or a text such as '30d', got [1]"),
    ],
)
def test_duration_parse_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        duration.parse(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"), [(2592000, "30d"), (1209600, "2w"), (5400, "90m"), (90, "90s"), (1.5, "1.5s")]
)
def test_duration_describe(seconds: float, text: str) -> None:
    assert duration.describe(seconds) == text
