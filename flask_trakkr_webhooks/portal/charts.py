"""The health chart: deliveries per hour by outcome and attempt latency p50/p95, drawn as inline SVG.

Pure: the views hand in rows read from the database; this module buckets them by hour and
draws the chart as SVG markup (presentation attributes only, no ``style``: the portal's CSP
allows no inline styles). The same buckets fill the table beside it, for screen readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from markupsafe import Markup, escape

#: Outcomes counted per bucket, in drawing order (bottom to top), with their colour and pattern.
OUTCOMES = (("succeeded", "#2e7d32"), ("failed", "#c62828"), ("cancelled", "#757575"))

WIDTH = 720
HEIGHT = 200
MARGIN = 30


@dataclass
class Bucket:
    """One hour: deliveries finished in it by outcome, and its attempts' latencies."""

    start: datetime
    counts: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _ in OUTCOMES})
    latencies: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Deliveries finished in this hour."""
        return sum(self.counts.values())

    @property
    def p50(self) -> float | None:
        """Median attempt latency (ms), or ``None`` without attempts."""
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        """95th percentile attempt latency (ms), or ``None`` without attempts."""
        return percentile(self.latencies, 95)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank ``pct`` percentile of ``values`` (``None`` when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


def hourly(
    now: datetime,
    hours: int,
    deliveries: Iterable[tuple[datetime, str, int]],
    attempts: Iterable[tuple[datetime, float | None]],
) -> list[Bucket]:
    """``hours`` buckets ending with the current hour: ``deliveries`` are ``(completed_at, status, count)``,
    ``attempts`` are ``(started_at, duration_ms)``; rows outside the window are ignored."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    buckets = [Bucket(start + timedelta(hours=i)) for i in range(hours)]

    def index(at: datetime) -> int | None:
        if at < start or at >= end:
            return None
        return int((at - start).total_seconds() // 3600)

    for at, status, count in deliveries:
        i = index(at)
        if i is not None and status in buckets[i].counts:
            buckets[i].counts[status] += count
    for at, duration in attempts:
        i = index(at)
        if i is not None and duration is not None:
            buckets[i].latencies.append(duration)
    return buckets


def svg(buckets: Sequence[Bucket], title: str) -> Markup:
    """The chart of ``buckets``: stacked bars of deliveries by outcome, lines of p50 and p95 latency."""
    n = max(len(buckets), 1)
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    most = max((b.total for b in buckets), default=0) or 1
    slowest = max((b.p95 or 0 for b in buckets), default=0) or 1
    step = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="chart-title" class="health-chart"><title id="chart-title">{escape(title)}</title>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#999"/>',
        f'<text x="{MARGIN}" y="{MARGIN - 8}" font-size="11" fill="#333">{most} deliveries</text>',
        f'<text x="{WIDTH - MARGIN}" y="{MARGIN - 8}" font-size="11" fill="#333" text-anchor="end">'
        f"{slowest:.0f} ms (p95)</text>",
    ]
    for i, bucket in enumerate(buckets):
        y = float(HEIGHT - MARGIN)
        for name, colour in OUTCOMES:
            count = bucket.counts[name]
            if not count:
                continue
            h = plot_h * count / most
            y -= h
            parts.append(
                f'<rect x="{MARGIN + i * step + step * 0.1:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{bucket.start:%Y-%m-%d %H:00} UTC: {count} {name}'
                "</title></rect>"
            )
    for key, colour, dash in (("p50", "#1565c0", ""), ("p95", "#ef6c00", ' stroke-dasharray="4 3"')):
        points = [
            f"{MARGIN + (i + 0.5) * step:.1f},{HEIGHT - MARGIN - plot_h * value / slowest:.1f}"
            for i, b in enumerate(buckets)
            if (value := getattr(b, key)) is not None
        ]
        if points:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
            )
            # A dot per hour, so an hour alone (no line to draw) shows as well.
            for point in points:
                cx, cy = point.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
    if buckets:
        for tx, anchor, at in ((MARGIN, "start", buckets[0].start), (WIDTH - MARGIN, "end", buckets[-1].start)):
            parts.append(
                f'<text x="{tx}" y="{HEIGHT - MARGIN + 16}" font-size="11" fill="#333" text-anchor="{anchor}">'
                f"{at:%Y-%m-%d %H:00} UTC</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # every value above is a number or escaped
