"""Charts as SVG text, rendered on the server: no script, no third-party library, no
inline style (the page's Content-Security-Policy allows none). Each chart carries a title
and a description for screen readers; the table beside it holds the same numbers. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart", "line_chart", "sparkline"]

# Okabe-Ito: told apart by readers with colour-vision deficiencies; dark enough on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000")

Point = tuple[int, float | None]


def _fitted(name: str, chars: int) -> str:
    """``name`` escaped for SVG text, cut to ``chars`` characters with an ellipsis if longer
    (the whole name then in a ``<title>``, which readers and screen readers show)."""
    if len(name) <= chars:
        return escape(name)
    return f"<title>{escape(name)}</title>{escape(name[: max(1, chars - 1)])}…"


def _frame(width: int, height: int, label: str, body: list[str]) -> str:
    text = escape(label)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{text}" class="chart">'
        f"<title>{text}</title>{''.join(body)}</svg>"
    )


def sparkline(points: Sequence[Point], label: str, width: int = 160, height: int = 40) -> str:
    """A small line of rates (0..1) over years; gaps where a year has no rate."""
    shown = [(y, r) for y, r in points if r is not None]
    if not shown:
        return _frame(width, height, label, [])
    years = [y for y, _ in points]
    lo, hi = min(years), max(years)
    top = max(r for _, r in shown) or 1.0

    def xy(year: int, rate: float) -> str:
        x = 4 + (width - 8) * ((year - lo) / (hi - lo) if hi > lo else 0.5)
        y = height - 4 - (height - 8) * rate / top
        return f"{x:.1f},{y:.1f}"

    path = " ".join(xy(y, r) for y, r in shown)
    last = xy(*shown[-1])
    return _frame(
        width,
        height,
        label,
        [
            f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>',
            f'<circle cx="{last.split(",")[0]}" cy="{last.split(",")[1]}" r="3" '
            f'fill="{PALETTE[0]}"/>',
        ],
    )


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]], label: str, width: int = 640, height: int = 280
) -> str:
    """Rates (0..1) over years, one line per series (at most seven drawn, with a legend);
    a year without a rate (suppressed, not yet observable) is a gap, never 0."""
    series = [s for s in series if any(r is not None for _, r in s[1])][: len(PALETTE)]
    if not series:
        return _frame(width, 60, label, ['<text x="8" y="30">no published rates</text>'])
    # the axis spans the years with a rate; years before or after it with none (every cell
    # suppressed or not yet observable) are named under the axis instead of drawn empty
    every = sorted({y for _, pts in series for y, _ in pts})
    years = sorted({y for _, pts in series for y, r in pts if r is not None})
    lo, hi = years[0], years[-1]
    outside = [y for y in every if y < lo or y > hi]
    left, right, top_pad, bottom = 48, 16, 12, 40 + 18 * ((len(series) + 1) // 2)
    bottom += 18 if outside else 0
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    highest = max(r for _, pts in series for _, r in pts if r is not None)
    top = min(1.0, max(0.1, round(highest + 0.05, 1)))

    def x(year: int) -> float:
        return left + plot_w * ((year - lo) / (hi - lo) if hi > lo else 0.5)

    def y(rate: float) -> float:
        return top_pad + plot_h * (1 - rate / top)

    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i in range(5):
        tick = top * i / 4
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#d0d0d0"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end" font-size="11" fill="#333333">{tick:.0%}</text>'
        )
    inside = [y for y in every if lo <= y <= hi]
    step = max(1, len(inside) // 8)
    for year in inside[::step]:
        body.append(
            f'<text x="{x(year):.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle" '
            f'font-size="11" fill="#333333">{year}</text>'
        )
    if outside:
        spans = ", ".join(_span(run) for run in _runs(outside))
        body.append(
            f'<text x="{left}" y="{height - 8}" font-size="11" font-style="italic" '
            f'fill="#555555">No published rate in {spans}.</text>'
        )
    for n, (name, pts) in enumerate(series):
        colour = PALETTE[n]
        run: list[str] = []
        runs: list[list[str]] = []
        for year, rate in sorted(pts):
            if year < lo or year > hi:
                continue
            if rate is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{x(year):.1f},{y(rate):.1f}")
            body.append(
                f'<circle cx="{x(year):.1f}" cy="{y(rate):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)} {year}: {rate:.1%}</title></circle>"
            )
        if run:
            runs.append(run)
        for points in runs:
            body.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                f'stroke-width="2"/>'
            )
        lx = left + (n % 2) * (plot_w / 2)
        ly = top_pad + plot_h + 34 + 18 * (n // 2)
        body.append(
            f'<rect x="{lx:.1f}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{lx + 18:.1f}" y="{ly + 1}" font-size="12" fill="#111111">'
            f"{_fitted(name, int(plot_w / 2 - 24) // 7)}</text>"
        )
    return _frame(width, height, label, body)


def _runs(years: Sequence[int]) -> list[list[int]]:
    """Sorted ``years`` as runs of consecutive years."""
    runs: list[list[int]] = []
    for year in years:
        if runs and runs[-1][-1] == year - 1:
            runs[-1].append(year)
        else:
            runs.append([year])
    return runs


def _span(run: Sequence[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def bar_chart(bars: Sequence[tuple[str, float | None, str]], label: str, width: int = 640) -> str:
    """Horizontal bars of rates (0..1): (group, rate, what to write where there is none:
    "suppressed" or "not yet observable"); a missing rate is written, never drawn as 0."""
    row_h = 24
    # the labels' column is as wide as the longest (about 7 px a character at 12 px),
    # within 120-320 px; a longer label is cut with an ellipsis and kept whole in its title
    longest = max((len(name) for name, _, _ in bars), default=0)
    left = min(320, max(120, 7 * longest + 16))
    height = max(1, len(bars)) * row_h + 8
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    plot = width - left - 70
    for i, (name, rate, missing) in enumerate(bars):
        top = 4 + i * row_h
        body.append(
            f'<text x="{left - 8}" y="{top + 16}" text-anchor="end" font-size="12" '
            f'fill="#111111">{_fitted(name, (left - 16) // 7)}</text>'
        )
        if rate is None:
            body.append(
                f'<text x="{left + 4}" y="{top + 16}" font-size="12" font-style="italic" '
                f'fill="#555555">{escape(missing)}</text>'
            )
            continue
        w = max(1.0, plot * min(rate, 1.0))
        body.append(
            f'<rect x="{left}" y="{top + 4}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{PALETTE[0]}"/><text x="{left + w + 6:.1f}" y="{top + 16}" '
            f'font-size="12" fill="#111111">{rate:.1%}</text>'
        )
    return _frame(width, height, label, body)
