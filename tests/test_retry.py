"""The retry decision table (pure): what follows each kind of answer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_trakkr_webhooks import retry
from flask_trakkr_webhooks.retry import DEFERRED, FAILED, RETRY, SUCCEEDED, decide, parse_retry_after

DELAYS = (1.0, 2.0, 4.0)
NOW = datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc)


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(NOW + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    "status,error,retry_after,attempt,outcome,delay",
    [
        # 2xx: success, whatever the attempt
        (200, None, None, 1, SUCCEEDED, None),
        (201, None, None, 1, SUCCEEDED, None),
        (204, None, None, 3, SUCCEEDED, None),
        (299, None, None, 4, SUCCEEDED, None),
        # 3xx: a failure, never followed, never retried
        (301, None, None, 1, FAILED, None),
        (302, None, None, 1, FAILED, None),
        (304, None, None, 1, FAILED, None),
        (307, None, None, 1, FAILED, None),
        (308, None, None, 1, FAILED, None),
        # other 4xx: permanent
        (400, None, None, 1, FAILED, None),
        (401, None, None, 1, FAILED, None),
        (403, None, None, 1, FAILED, None),
        (404, None, None, 1, FAILED, None),
        (410, None, None, 1, FAILED, None),
        (422, None, None, 1, FAILED, None),
        # 408: the endpoint timed out waiting for us -> retried like a timeout
        (408, None, None, 1, RETRY, 1.0),
        (408, None, None, 3, RETRY, 4.0),
        # 429: deferred (no retry used) for Retry-After in seconds or as an HTTP date, else
        # 1, 2, 4 ... s by the number of deferrals so far (none here)
        (429, None, "3", 1, DEFERRED, 3.0),
        (429, None, " 3 ", 2, DEFERRED, 3.0),
        (429, None, "0", 1, DEFERRED, 0.0),
        (429, None, _http_date(7), 1, DEFERRED, 7.0),
        (429, None, _http_date(-30), 1, DEFERRED, 0.0),
        (429, None, "999999", 1, DEFERRED, 3600.0),  # capped by MAX_RETRY_AFTER
        (429, None, None, 2, DEFERRED, 1.0),
        (429, None, "", 1, DEFERRED, 1.0),
        (429, None, "soon", 1, DEFERRED, 1.0),
        (429, None, "-5", 1, DEFERRED, 1.0),
        (429, None, "1.5", 1, DEFERRED, 1.0),
        # 5xx: backoff 1, 2, 4 s
        (500, None, None, 1, RETRY, 1.0),
        (502, None, None, 2, RETRY, 2.0),
        # 503 with Retry-After: deferred as on 429 (receiver_kit answers so for an event in progress)
        (503, None, "30", 3, DEFERRED, 30.0),
        (503, None, "30", 1, DEFERRED, 30.0),
        (503, None, "0", 2, DEFERRED, 0.0),
        (503, None, _http_date(45), 1, DEFERRED, 45.0),
        (503, None, _http_date(-30), 1, DEFERRED, 0.0),
        (503, None, "999999", 1, DEFERRED, 3600.0),  # capped by MAX_RETRY_AFTER
        (503, None, "30", 4, DEFERRED, 30.0),  # deferrals use up no retry, as for 429
        # 503 without a usable Retry-After: the normal backoff
        (503, None, None, 1, RETRY, 1.0),
        (503, None, None, 3, RETRY, 4.0),
        (503, None, "", 2, RETRY, 2.0),
        (503, None, "later", 2, RETRY, 2.0),
        # other 5xx: Retry-After is not theirs to set
        (500, None, "30", 1, RETRY, 1.0),
        (502, None, "30", 2, RETRY, 2.0),
        (504, None, "30", 3, RETRY, 4.0),
        (504, None, None, 1, RETRY, 1.0),
        (599, None, None, 1, RETRY, 1.0),
        # no answer at all
        (None, retry.TIMEOUT, None, 1, RETRY, 1.0),
        (None, retry.CONNECTION, None, 2, RETRY, 2.0),
        (None, retry.PERMANENT, None, 1, FAILED, None),
        # after the last retry
        (500, None, None, 4, FAILED, None),
        (429, None, "3", 4, DEFERRED, 3.0),  # a rate-limit answer is not a failure
        (None, retry.TIMEOUT, None, 4, FAILED, None),
        # nonsense statuses are not success
        (100, None, None, 1, FAILED, None),
        (600, None, None, 1, FAILED, None),
    ],
)
def test_decision_table(status, error, retry_after, attempt, outcome, delay):
    decision = decide(
        attempt=attempt,
        delays=DELAYS,
        status_code=status,
        error=error,
        retry_after=retry_after,
        max_retry_after=3600,
        now=NOW,
    )
    assert decision.outcome == outcome, decision
    assert decision.delay == (pytest.approx(delay, abs=0.01) if delay is not None else None)
    assert decision.retry is (outcome in (RETRY, DEFERRED))
    assert decision.deferred is (outcome == DEFERRED)
    assert decision.reason


def test_reasons_say_why():
    assert "redirects are not followed" in decide(attempt=1, delays=DELAYS, status_code=302).reason
    assert "gave up after 4 attempts" in decide(attempt=4, delays=DELAYS, status_code=500).reason
    assert "Retry-After 3" in decide(attempt=1, delays=DELAYS, status_code=429, retry_after="3").reason


def test_a_503_retry_after_is_capped_by_max_retry_after_and_says_so():
    decision = decide(attempt=1, delays=DELAYS, status_code=503, retry_after="600", max_retry_after=120, now=NOW)
    assert decision.deferred and decision.delay == 120.0
    assert decision.reason == "HTTP 503; deferred 120 s (Retry-After 600); deferral 1, not a retry"
    plain = decide(attempt=1, delays=DELAYS, status_code=503, now=NOW)
    assert plain.delay == 1.0 and plain.reason == "HTTP 503; retry 1 of 3"


def test_a_receiver_that_always_fails_gets_exactly_len_delays_retries():
    attempts = 1
    while decide(attempt=attempts, delays=DELAYS, status_code=503).retry:
        attempts += 1
    assert attempts == 1 + len(DELAYS)


def test_no_delays_means_no_retries():
    assert decide(attempt=1, delays=(), status_code=500).outcome == FAILED


@pytest.mark.parametrize("kwargs", [dict(attempt=0, status_code=500), dict(attempt=1), dict(attempt=1, error="boom")])
def test_bad_calls_raise(kwargs):
    with pytest.raises(ValueError):
        decide(delays=DELAYS, **kwargs)


@pytest.mark.parametrize(
    "value,expected",
    # RFC 9110 recipients accept the obsolete RFC 850 date form too.
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("Wed, 15 Jan 2025 09:30:10 GMT", 10.0),
        ("nonsense", None),
        ("Wed, 15 Jan 2025 09:29:00 GMT", 0.0),
        ("Wednesday, 15-Jan-25 09:30:05 GMT", 5.0),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@given(
    st.integers(min_value=100, max_value=999),
    st.integers(min_value=1, max_value=6),
    st.one_of(st.none(), st.text(max_size=40)),
)
def test_delay_is_bounded_and_only_on_retry(status, attempt, retry_after):
    decision = decide(
        attempt=attempt, delays=DELAYS, status_code=status, retry_after=retry_after, max_retry_after=60, now=NOW
    )
    if decision.deferred:
        assert status in (429, 503)
        assert 0 <= decision.delay <= 60
    elif decision.retry:
        assert 0 <= decision.delay <= 60
        assert attempt <= len(DELAYS)
    else:
        assert decision.delay is None


def test_deferrals_back_off_without_retry_after_and_use_up_no_retry():
    delays = [
        decide(attempt=1, delays=DELAYS, status_code=429, deferrals=n, deferred_seconds=0, now=NOW).delay
        for n in range(9)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_a_deferral_past_max_rate_limit_wait_fails_and_says_why():
    def after_50_s_of_waiting(retry_after: str):
        return decide(
            attempt=1,
            delays=DELAYS,
            status_code=429,
            retry_after=retry_after,
            deferrals=3,
            deferred_seconds=50,
            max_rate_limit_wait=60,
            now=NOW,
        )

    within = after_50_s_of_waiting("10")
    assert within.deferred and within.delay == 10.0
    assert within.reason == "HTTP 429; deferred 10 s (Retry-After 10); deferral 4, not a retry"
    past = after_50_s_of_waiting("11")
    assert past.outcome == FAILED and past.delay is None
    assert past.reason == (
        "HTTP 429: rate limited; 3 deferral(s) waited 50 s and the endpoint asks for 11 s more, "
        "past MAX_RATE_LIMIT_WAIT (60 s)"
    )
    # A 503 with Retry-After past the maximum fails the same way; without one it is a plain 5xx.
    assert (
        decide(attempt=1, delays=DELAYS, status_code=503, retry_after="100", max_rate_limit_wait=60, now=NOW).outcome
        == FAILED
    )
    assert decide(attempt=1, delays=DELAYS, status_code=503, max_rate_limit_wait=0, now=NOW).outcome == RETRY


def test_failures_after_deferrals_still_get_every_retry():
    # The caller counts attempts without deferrals: 5 deferrals then a 500 is retry 1 of 3.
    decision = decide(attempt=1, delays=DELAYS, status_code=500, deferrals=5, deferred_seconds=20, now=NOW)
    assert decision.outcome == RETRY and decision.reason == "HTTP 500; retry 1 of 3"
