"""What ``guardrails eval`` reports: `GuardMetrics` per guard and the `EvalReport` around them.

Counts are folded in as the checks finish (`Tally`), in memory that does not grow with the number
of rows: latencies go into a histogram of log-spaced buckets (each 2% wider than the one before),
so a percentile is exact to within 2%, whatever the number of rows. Rows appear in a report by
their id or their digest; their text only when the run was asked to show it.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._models import CATEGORIES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EvalReport", "GuardMetrics", "LatencyHistogram", "RowRef", "Tally"]

#: How many false positives and false negatives a report names per guard.
EXAMPLES_PER_KIND = 5


class LatencyHistogram:
    """Latencies in log-spaced buckets: constant memory, percentiles exact to within 2%.

    Bucket ``i`` holds latencies in ``[LOW * RATIO**i, LOW * RATIO**(i+1))``; the first also holds
    everything below `LOW` (1 µs), the last everything above 10,000 s.
    """

    LOW = 1e-6
    RATIO = 1.02
    BUCKETS = math.ceil(math.log(1e4 / LOW) / math.log(RATIO)) + 1

    __slots__ = ("count", "counts", "maximum", "minimum")

    def __init__(self) -> None:
        self.counts = [0] * self.BUCKETS
        self.count = 0
        self.minimum = math.inf
        self.maximum = 0.0

    def add(self, seconds: float) -> None:
        """Count one latency."""
        if seconds <= self.LOW:
            index = 0
        else:
            index = min(self.BUCKETS - 1, int(math.log(seconds / self.LOW) / math.log(self.RATIO)))
        self.counts[index] += 1
        self.count += 1
        self.minimum = min(self.minimum, seconds)
        self.maximum = max(self.maximum, seconds)

    def percentile(self, q: float) -> float | None:
        """The `q`-th percentile (0-100) in seconds, None when nothing was counted."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * q / 100))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                # The bucket's geometric middle, kept within what was actually seen.
                middle: float = self.LOW * self.RATIO ** (index + 0.5)
                return min(self.maximum, max(self.minimum, middle))
        return self.maximum  # pragma: no cover - the counts add up to `count`

    def coarse(self, bins: int) -> tuple[list[float], list[int]]:
        """The counts regrouped into `bins` log-spaced bins from the lowest to the highest
        non-empty bucket, empty bins included (for a chart): (bins + 1 edges, counts)."""
        used = [index for index, count in enumerate(self.counts) if count]
        if not used:
            return [], []
        first, last = used[0], used[-1] + 1
        width = max(1, math.ceil((last - first) / bins))
        counts = [sum(self.counts[start : start + width]) for start in range(first, last, width)]
        edges = [self.LOW * self.RATIO ** (first + i * width) for i in range(len(counts) + 1)]
        return edges, counts


@dataclass(frozen=True)
class RowRef:
    """A row as a report names it: its id (or digest), its digest, and its text only if shown."""

    row: str
    digest: str
    text: str | None = None


@dataclass(frozen=True)
class GuardMetrics:
    """One guard's results over the evaluated rows.

    A labelled row is *positive* when it should be blocked. Rows whose check failed count in
    `errors` and in no other count: a failed check is never guessed.

    Attributes:
        name: the guard's name in the run.
        checked: rows the guard gave a verdict on.
        blocked: verdicts that blocked (labelled or not).
        tp: positive rows blocked. fp: negative rows blocked.
        tn: negative rows allowed. fn: positive rows allowed.
        errors: rows whose check failed (after retries).
        error_types: failures by exception name (``GuardTimeout``, ...).
        vendor_calls: requests sent to vendors for these results (retries included; cached
            verdicts send none; `LocalGuard` sends none).
        latency_p50, latency_p95, latency_p99: seconds per check (None with no verdict).
        categories: verdicts reporting each category (`guardrails.CATEGORIES`).
        false_positives, false_negatives: the first few such rows in the data's order (the same
            whatever order the checks finished in), by id and digest.
        latency: the latency histogram behind the percentiles (for charts).
    """

    name: str
    checked: int
    blocked: int
    tp: int
    fp: int
    tn: int
    fn: int
    errors: int
    error_types: dict[str, int]
    vendor_calls: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    categories: dict[str, int]
    false_positives: tuple[RowRef, ...] = ()
    false_negatives: tuple[RowRef, ...] = ()
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False, compare=False)

    @property
    def labelled(self) -> int:
        """Labelled rows the guard gave a verdict on."""
        return self.tp + self.fp + self.tn + self.fn

    @property
    def precision(self) -> float | None:
        """tp / (tp + fp): of the rows blocked, the share that should be; None when none was."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """tp / (tp + fn): of the rows that should be blocked, the share that was; None if none."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """The harmonic mean of precision and recall; None when either is undefined or both are 0."""
        precision, recall = self.precision, self.recall
        if precision is None or recall is None or precision + recall == 0:
            return None
        return 2 * precision * recall / (precision + recall)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (rows by id and digest; text only when the run showed it)."""
        return {
            "checked": self.checked,
            "blocked": self.blocked,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "vendor_calls": self.vendor_calls,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
            "latency_p99": self.latency_p99,
            "categories": dict(self.categories),
            "false_positives": [_ref_json(ref) for ref in self.false_positives],
            "false_negatives": [_ref_json(ref) for ref in self.false_negatives],
        }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _ref_json(ref: RowRef) -> dict[str, str]:
    data = {"row": ref.row, "digest": ref.digest}
    if ref.text is not None:
        data["text"] = ref.text
    return data


class Tally:
    """The running counts of one guard, folded in as its checks finish."""

    __slots__ = (
        "blocked",
        "categories",
        "checked",
        "error_types",
        "errors",
        "false_negatives",
        "false_positives",
        "fn",
        "fp",
        "latency",
        "name",
        "tn",
        "tp",
        "vendor_calls",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.checked = self.blocked = self.tp = self.fp = self.tn = self.fn = 0
        self.errors = self.vendor_calls = 0
        self.error_types: dict[str, int] = {}
        self.categories: dict[str, int] = {}
        self.latency = LatencyHistogram()
        # Max-heaps on the row number (negated): the lowest-numbered examples are kept.
        self.false_positives: list[tuple[int, RowRef]] = []
        self.false_negatives: list[tuple[int, RowRef]] = []

    def add(
        self,
        *,
        blocked: bool | None,
        label: bool | None,
        categories: Iterable[str],
        latency: float,
        vendor_calls: int,
        error: str | None,
        number: int,
        ref: Callable[[], RowRef],
    ) -> None:
        """Fold in one finished check (`blocked` None and `error` set when it failed)."""
        self.vendor_calls += vendor_calls
        if blocked is None:
            self.errors += 1
            kind = error or "error"
            self.error_types[kind] = self.error_types.get(kind, 0) + 1
            return
        self.checked += 1
        self.latency.add(latency)
        for category in categories:
            self.categories[category] = self.categories.get(category, 0) + 1
        if blocked:
            self.blocked += 1
        if label is None:
            return
        if label and blocked:
            self.tp += 1
        elif label:
            self.fn += 1
            _keep(self.false_negatives, number, ref)
        elif blocked:
            self.fp += 1
            _keep(self.false_positives, number, ref)
        else:
            self.tn += 1

    def metrics(self) -> GuardMetrics:
        """The guard's `GuardMetrics` so far."""
        return GuardMetrics(
            name=self.name,
            checked=self.checked,
            blocked=self.blocked,
            tp=self.tp,
            fp=self.fp,
            tn=self.tn,
            fn=self.fn,
            errors=self.errors,
            error_types=dict(sorted(self.error_types.items())),
            vendor_calls=self.vendor_calls,
            latency_p50=self.latency.percentile(50),
            latency_p95=self.latency.percentile(95),
            latency_p99=self.latency.percentile(99),
            categories={c: self.categories[c] for c in CATEGORIES if self.categories.get(c)},
            false_positives=tuple(ref for _, ref in sorted(self.false_positives, reverse=True)),
            false_negatives=tuple(ref for _, ref in sorted(self.false_negatives, reverse=True)),
            latency=self.latency,
        )


def _keep(examples: list[tuple[int, RowRef]], number: int, ref: Callable[[], RowRef]) -> None:
    # Row numbers are unique within a run, so the tuples never compare their RowRef.
    if len(examples) < EXAMPLES_PER_KIND:
        heapq.heappush(examples, (-number, ref()))
    elif -examples[0][0] > number:
        heapq.heapreplace(examples, (-number, ref()))


@dataclass(frozen=True)
class EvalReport:
    """The results of `guardrails.eval.evaluate`: per guard metrics and how often guards agree.

    Attributes:
        guards: `GuardMetrics` by guard name, in the order the guards were given.
        agreement: for each pair of guards (in that order), the share of rows both gave a verdict
            on where they took the same action; a pair with no such row is left out.
        rows: rows evaluated. labelled: those with a label.
        resumed: (row, guard) results read from the results file instead of being checked again.
        elapsed: seconds the run took.
    """

    guards: dict[str, GuardMetrics]
    agreement: dict[tuple[str, str], float]
    rows: int
    labelled: int
    resumed: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``guardrails eval --json`` prints)."""
        return {
            "rows": self.rows,
            "labelled": self.labelled,
            "resumed": self.resumed,
            "elapsed": round(self.elapsed, 3),
            "guards": {name: metrics.to_json() for name, metrics in self.guards.items()},
            "agreement": [
                {"guards": [first, second], "agreement": share}
                for (first, second), share in self.agreement.items()
            ],
        }

    def to_markdown(self) -> str:
        """The report as Markdown tables, to paste into a pull request. No prompt text unless shown."""
        lines = [
            "## Guard evaluation",
            "",
            f"{self.rows} rows ({self.labelled} labelled), {len(self.guards)} guards"
            + (f", {self.resumed} results resumed" if self.resumed else "")
            + ".",
            "",
            "| guard | TP | FP | TN | FN | precision | recall | F1 | errors | vendor calls "
            "| p50 | p95 | p99 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, m in self.guards.items():
            lines.append(
                f"| {_cell(name)} | {m.tp} | {m.fp} | {m.tn} | {m.fn} | {_share(m.precision)} "
                f"| {_share(m.recall)} | {_share(m.f1)} | {m.errors} | {m.vendor_calls} "
                f"| {_ms(m.latency_p50)} | {_ms(m.latency_p95)} | {_ms(m.latency_p99)} |"
            )
        used = self._categories_used()
        lines += ["", "### Detections per category", ""]
        if used:
            lines.append("| guard | " + " | ".join(used) + " |")
            lines.append("| --- |" + " ---: |" * len(used))
            for name, m in self.guards.items():
                lines.append(
                    f"| {_cell(name)} | " + " | ".join(str(m.categories.get(c, 0)) for c in used) + " |"
                )
        else:
            lines.append("No guard reported a category.")
        if self.agreement:
            lines += ["", "### Agreement", "", "| guards | same action |", "| --- | ---: |"]
            for (first, second), share in self.agreement.items():
                lines.append(f"| {_cell(first)} / {_cell(second)} | {_share(share)} |")
        misses = [
            (name, kind, ref)
            for name, m in self.guards.items()
            for kind, refs in (("false positive", m.false_positives), ("false negative", m.false_negatives))
            for ref in refs
        ]
        if misses:
            shown = any(ref.text is not None for _, _, ref in misses)
            lines += ["", "### Misses (the first few per guard)", ""]
            lines.append("| guard | kind | row | digest |" + (" text |" if shown else ""))
            lines.append("| --- | --- | --- | --- |" + (" --- |" if shown else ""))
            for name, kind, ref in misses:
                row = f"| {_cell(name)} | {kind} | {_cell(ref.row)} | `{ref.digest}` |"
                if shown:
                    row += f" {_cell(_clip(ref.text or ''))} |"
                lines.append(row)
        errors = {name: m.error_types for name, m in self.guards.items() if m.errors}
        if errors:
            lines += ["", "### Errors", ""]
            for name, types in errors.items():
                kinds = ", ".join(f"{kind}: {count}" for kind, count in types.items())
                lines.append(f"- {_cell(name)}: {kinds}")
        return "\n".join(lines) + "\n"

    def _categories_used(self) -> list[str]:
        return [c for c in CATEGORIES if any(m.categories.get(c) for m in self.guards.values())]

    def to_html(self, path: str | Path) -> Path:
        """Write the report as one self-contained HTML file with its charts; returns the path.

        The charts (confusion matrix per guard, latency distribution per guard, detections per
        category) are SVG drawn by matplotlib and embedded as data URLs: the file needs nothing
        else to open, no network and no script.

        Raises:
            ImportError: matplotlib is missing: ``pip install 'guardrails-middleware[eval]'``.
        """
        charts = _charts(self)
        body = [
            "<h1>Guard evaluation</h1>",
            f"<p>{self.rows} rows ({self.labelled} labelled), {len(self.guards)} guards"
            + (f", {self.resumed} results resumed" if self.resumed else "")
            + f", {self.elapsed:.1f} s.</p>",
            _html_table(self),
        ]
        for title, figures in charts:
            body.append(f"<h2>{html.escape(title)}</h2><div class='charts'>")
            for caption, svg in figures:
                data = base64.b64encode(svg).decode("ascii")
                body.append(
                    f"<figure><img class='chart' alt='{html.escape(caption, quote=True)}' "
                    f"src='data:image/svg+xml;base64,{data}'><figcaption>{html.escape(caption)}"
                    "</figcaption></figure>"
                )
            body.append("</div>")
        document = (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Guard evaluation</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}"
            ".charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img.chart{display:block}"
            "</style></head><body>" + "".join(body) + "</body></html>\n"
        )
        target = Path(path)
        target.write_text(document, encoding="utf-8")
        return target


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.2f} ms"


def _cell(value: str) -> str:
    # A value from the data (an id, a guard name) must not break the table or inject markup.
    return " ".join(value.split()).replace("|", "\\|").replace("<", "&lt;")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _html_table(report: EvalReport) -> str:
    head = ["guard", "TP", "FP", "TN", "FN", "precision", "recall", "F1", "errors", "vendor calls"]
    head += ["p50", "p95", "p99"]
    rows = []
    for name, m in report.guards.items():
        cells: list[object] = [name, m.tp, m.fp, m.tn, m.fn, _share(m.precision), _share(m.recall)]
        cells += [_share(m.f1), m.errors, m.vendor_calls, _ms(m.latency_p50), _ms(m.latency_p95)]
        cells.append(_ms(m.latency_p99))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    agreement = ""
    if report.agreement:
        agreement = (
            "<h2>Agreement</h2><table><tr><th>guards</th><th>same action</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(a)} / {html.escape(b)}</td><td>{_share(s)}</td></tr>"
                for (a, b), s in report.agreement.items()
            )
            + "</table>"
        )
    return f"<table>{header}{''.join(rows)}</table>{agreement}"


def _charts(report: EvalReport) -> list[tuple[str, list[tuple[str, bytes]]]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "EvalReport.to_html draws its charts with matplotlib: pip install 'guardrails-middleware[eval]'"
        ) from None
    sections: list[tuple[str, list[tuple[str, bytes]]]] = []
    matrices = [
        (f"{name}: confusion matrix", _svg(_confusion(Figure, name, m)))
        for name, m in report.guards.items()
        if m.labelled
    ]
    if matrices:
        sections.append(("Confusion matrices", matrices))
    sections.append(("Latency", [("latency distribution per guard", _svg(_latency(Figure, report.guards)))]))
    sections.append(("Categories", [("detections per category", _svg(_categories(Figure, report)))]))
    return sections


def _svg(figure: Figure) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    # Text as paths: the SVG needs no font; a fixed salt keeps the file the same from run to run.
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "guardrails-eval"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def _confusion(figure_type: type[Figure], name: str, m: GuardMetrics) -> Figure:
    figure = figure_type(figsize=(3.4, 3.0))
    axes = figure.subplots()
    cells = [[m.tp, m.fn], [m.fp, m.tn]]
    axes.imshow(cells, cmap="Blues", vmin=0)
    peak = max(max(row) for row in cells) or 1
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            axes.text(
                j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black"
            )
    axes.set_xticks([0, 1], labels=["blocked", "allowed"])
    axes.set_yticks([0, 1], labels=["should block", "should allow"])
    axes.set_title(name)
    return figure


def _latency(figure_type: type[Figure], guards: Mapping[str, GuardMetrics]) -> Figure:
    from matplotlib import ticker

    figure = figure_type(figsize=(6.4, 3.4))
    axes = figure.subplots()
    drawn = False
    for name, m in guards.items():
        edges, counts = m.latency.coarse(40)
        if not counts:
            continue
        # A step outline per guard over log-spaced bins, in milliseconds.
        axes.stairs(counts, [edge * 1000 for edge in edges], label=name, linewidth=1.5)
        drawn = True
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_xlabel("latency per check (ms)")
    axes.set_ylabel("checks")
    if drawn:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no verdicts", transform=axes.transAxes, ha="center")
    return figure


def _categories(figure_type: type[Figure], report: EvalReport) -> Figure:
    figure = figure_type(figsize=(6.4, 3.4))
    axes = figure.subplots()
    names = list(report.guards)
    width = 0.8 / max(1, len(names))
    positions = range(len(CATEGORIES))
    for index, name in enumerate(names):
        counts = [report.guards[name].categories.get(c, 0) for c in CATEGORIES]
        axes.bar([p + index * width for p in positions], counts, width, label=name)
    axes.set_xticks([p + width * (len(names) - 1) / 2 for p in positions], labels=list(CATEGORIES))
    axes.tick_params(axis="x", labelrotation=20)
    axes.set_ylabel("verdicts")
    if names:
        axes.legend()
    if not report._categories_used():
        axes.text(0.5, 0.5, "no guard reported a category", transform=axes.transAxes, ha="center")
    return figure
