"""Compare guards on your own data before you switch them on: `evaluate` and its `EvalReport`.

::

    from guardrails import LocalGuard, PaloAltoAIRS
    from guardrails.eval import evaluate, read_rows   # rows: any iterable of dicts

    report = evaluate(read_rows("prompts.jsonl"), {"local": LocalGuard(), "panw": PaloAltoAIRS()},
                      results="results.jsonl")
    print(report.to_markdown())
    report.to_html("report.html")        # charts: pip install 'guardrails-middleware[eval]'

Every row goes to every guard through the guard's own `acheck`, so retries, the circuit breaker,
the verdict cache and the guard's rate budget work as in production. At most `concurrency` checks
run at once; ``rate=`` adds one budget (a `RateLimit`) shared by the whole run, and a check waits
for it rather than fail. A guard's own `GuardRateLimited` carrying ``retry_after`` is waited out
and the check tried again (a spent local budget indefinitely, a vendor 429 three more times);
any other failure (a guard raising outside its contract included) is an error in the report,
never a guess.

Rows are streamed: memory does not grow with the number of rows (the counts are folded in as
checks finish; latencies go into a fixed histogram). With ``results=PATH`` each finished (row,
guard) is appended to a JSONL file at once (see ``guardrails._eval_results``); a later run with the
same file checks only the pairs it does not hold, so an interrupted run is resumed without paying
twice. When the run is cancelled (Ctrl-C), the checks in flight are let finish and recorded.

Vendor calls are counted where they are sent: every request the resilience core sends (retries
included) is counted for the check that sent it, through a context variable
(``guardrails._eval_meter``). A cached verdict, a `LocalGuard` verdict, and a composition's
guards that were not asked count nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._budget import RateBudget, as_budget
from ._eval_data import EvalDataError, Item, items, read_rows
from ._eval_meter import CallMeter, metering
from ._eval_report import EvalReport, GuardMetrics, RowRef, Tally
from ._eval_results import Outcome, ResultsFile, record
from ._exceptions import ExtractionError, GuardError, GuardRateLimited
from ._guard import Guard

__all__ = ["EvalDataError", "EvalReport", "GuardMetrics", "Progress", "aevaluate", "evaluate", "read_rows"]

#: Extra tries for a check the vendor answered 429 after the guard's own retries.
VENDOR_RATE_RETRIES = 3

#: Called after each finished row: (rows done, errors so far, seconds elapsed).
Progress = Callable[[int, int, float], None]


def evaluate(
    rows: Iterable[Mapping[str, Any]],
    guards: Mapping[str, Guard],
    *,
    text_field: str = "prompt",
    label_field: str = "label",
    concurrency: int = 8,
    rate: float | RateBudget | None = None,
    results: str | Path | None = None,
    show_text: bool = False,
    progress: Progress | None = None,
) -> EvalReport:
    """Check every row with every guard and report how each did.

    Runs its own event loop (from async code, ``await aevaluate(...)``).

    Args:
        rows: dicts with the text under `text_field` (or OpenAI chat ``messages``), an optional
            label under `label_field` (true, 1, "block", "attack", "malicious", "unsafe": should
            block; false, 0, "allow", "benign", "safe": should allow; absent: unlabelled, scored
            without precision and recall) and an optional ``id``. Read lazily, one at a time.
        guards: guards by the name the report gives them (any `Guard`, compositions included).
            They are not closed: they are the caller's.
        text_field: the field holding the text.
        label_field: the field holding the label.
        concurrency: the most checks in flight at once.
        rate: checks per second for the whole run (or a `RateBudget` to share), None: no limit.
        results: a JSONL file recording each finished (row, guard); an existing one is resumed.
        show_text: put the rows' text in the results file and in the report's examples.
        progress: called after each finished row with (rows done, errors, seconds elapsed).

    Returns:
        The `EvalReport`.

    Raises:
        EvalDataError: a row has no text, or a bad label (the message names the row, never its text).
        ValueError: `guards` is empty or `concurrency` < 1.
    """
    return asyncio.run(
        aevaluate(
            rows,
            guards,
            text_field=text_field,
            label_field=label_field,
            concurrency=concurrency,
            rate=rate,
            results=results,
            show_text=show_text,
            progress=progress,
        )
    )


async def aevaluate(
    rows: Iterable[Mapping[str, Any]],
    guards: Mapping[str, Guard],
    *,
    text_field: str = "prompt",
    label_field: str = "label",
    concurrency: int = 8,
    rate: float | RateBudget | None = None,
    results: str | Path | None = None,
    show_text: bool = False,
    progress: Progress | None = None,
) -> EvalReport:
    """`evaluate` for async callers (same arguments)."""
    if not guards:
        raise ValueError("evaluate needs at least one guard")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency!r}")
    run = _Run(
        dict(guards),
        concurrency=concurrency,
        budget=as_budget(rate),
        results=ResultsFile(results, set(guards)) if results is not None else None,
        show_text=show_text,
        progress=progress,
    )
    stream = items(iter(rows), text_field=text_field, label_field=label_field, keep_text=show_text)
    return await run.run(stream)


class _RowState:
    """A row whose checks are not all finished; dropped when they are."""

    __slots__ = ("item", "pending", "verdicts")

    def __init__(self, item: Item, pending: int) -> None:
        self.item = item
        self.pending = pending
        self.verdicts: dict[str, bool | None] = {}


class _Run:
    def __init__(
        self,
        guards: dict[str, Guard],
        *,
        concurrency: int,
        budget: RateBudget | None,
        results: ResultsFile | None,
        show_text: bool,
        progress: Progress | None,
    ) -> None:
        self.guards = guards
        self.names = list(guards)
        self.concurrency = concurrency
        self.budget = budget
        self.results = results
        self.show_text = show_text
        self.progress = progress
        self.tallies = {name: Tally(name) for name in self.names}
        self.pairs = list(itertools.combinations(self.names, 2))
        self.agree = dict.fromkeys(self.pairs, 0)
        self.both = dict.fromkeys(self.pairs, 0)
        self.rows = self.labelled = self.resumed = self.rows_done = self.errors = 0
        self.started = time.monotonic()

    async def run(self, stream: Iterator[Item]) -> EvalReport:
        queue: asyncio.Queue[tuple[_RowState, str] | None] = asyncio.Queue(self.concurrency)
        producer = asyncio.ensure_future(self._produce(stream, queue))
        workers = [asyncio.ensure_future(self._worker(queue)) for _ in range(self.concurrency)]
        try:
            # Whichever fails first (bad data in the producer; a results file that cannot be
            # written in a worker) ends the run: the producer never waits on workers gone.
            done, _ = await asyncio.wait([producer, *workers], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            await self._stop(producer, workers, queue)
        return self._report()

    async def _stop(
        self,
        producer: asyncio.Future[None],
        workers: Sequence[asyncio.Future[None]],
        queue: asyncio.Queue[tuple[_RowState, str] | None],
    ) -> None:
        """Start no new check, and let each check in flight finish and be recorded.

        Workers are never cancelled: a cancelled check may have been paid for, and its result
        would be lost to the next run. However often the run is cancelled meanwhile (Ctrl-C),
        this waits for them (each within its guard's deadline); a second Ctrl-C stops the loop.
        """
        producer.cancel()
        while not queue.empty():
            queue.get_nowait()
        for _ in workers:
            queue.put_nowait(None)
        tasks = [producer, *workers]
        while not all(task.done() for task in tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task for task in tasks if not task.done()])
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: the first failure was raised by `run`
        if self.results is not None:
            self.results.close()

    async def _produce(
        self, stream: Iterator[Item], queue: asyncio.Queue[tuple[_RowState, str] | None]
    ) -> None:
        for item in stream:
            state = self._start(item)
            for name in self.names:
                if name not in state.verdicts:
                    await queue.put((state, name))
        for _ in range(self.concurrency):
            await queue.put(None)

    def _start(self, item: Item) -> _RowState:
        """Count the row in, and fold in what the results file already holds for it."""
        self.rows += 1
        self.labelled += item.label is not None
        state = _RowState(item, len(self.names))
        if self.results is not None:
            for name in self.names:
                outcome = self.results.done.get((item.key, item.digest, name))
                if outcome is not None:
                    self.resumed += 1
                    self._finish(state, name, outcome, write=False)
        return state

    async def _worker(self, queue: asyncio.Queue[tuple[_RowState, str] | None]) -> None:
        while (job := await queue.get()) is not None:
            state, name = job
            outcome = await self._check(self.guards[name], state.item)
            self._finish(state, name, outcome, write=True)

    async def _check(self, guard: Guard, item: Item) -> Outcome:
        meter = CallMeter()
        # The worker's own context: the calls of this check only (tasks it starts share it).
        metering.set(meter)
        await self._wait_for_budget()
        spent = 0.0
        vendor_retries = 0
        while True:
            started = time.perf_counter()
            try:
                verdict = await guard.acheck(item.content)
            except GuardRateLimited as exc:
                spent += time.perf_counter() - started
                local_budget = exc.status_code is None
                if exc.retry_after is not None and (local_budget or vendor_retries < VENDOR_RATE_RETRIES):
                    vendor_retries += not local_budget
                    await asyncio.sleep(exc.retry_after)
                    continue
                return _failure(exc, spent, meter.calls, transient=exc.transient)
            except GuardError as exc:
                return _failure(
                    exc, spent + time.perf_counter() - started, meter.calls, transient=exc.transient
                )
            except ExtractionError as exc:  # ContentTooLarge and kin: the row's doing, final
                return _failure(exc, spent + time.perf_counter() - started, meter.calls, transient=False)
            except Exception as exc:
                # A guard outside the contract (a bug, a composition's own error): an error in
                # the report under its type's name, retried by the next run; never a stalled run.
                return _failure(exc, spent + time.perf_counter() - started, meter.calls, transient=True)
            return Outcome(
                action=verdict.action.value,
                categories=tuple(sorted(verdict.categories)),
                reasons=tuple(verdict.reasons),
                latency=spent + time.perf_counter() - started,
                vendor_calls=meter.calls,
            )

    async def _wait_for_budget(self) -> None:
        budget = self.budget
        if budget is None:
            return
        # A budget is polled: it only says how long until the next unit, it cannot wake us.
        wait = await budget.atake()
        while wait > 0:
            await asyncio.sleep(wait)
            wait = await budget.atake()

    def _finish(self, state: _RowState, name: str, outcome: Outcome, *, write: bool) -> None:
        item = state.item
        if write and self.results is not None:
            self.results.append(
                record(
                    row=item.key,
                    digest=item.digest,
                    guard=name,
                    label=item.label,
                    outcome=outcome,
                    text=item.text,
                )
            )
        blocked = outcome.blocked
        self.tallies[name].add(
            blocked=blocked,
            label=item.label,
            categories=outcome.categories,
            latency=outcome.latency,
            vendor_calls=outcome.vendor_calls,
            error=outcome.error,
            number=item.number,
            ref=lambda: RowRef(item.key, item.digest, item.text),
        )
        self.errors += blocked is None
        state.verdicts[name] = blocked
        state.pending -= 1
        if state.pending == 0:
            self._row_done(state)

    def _row_done(self, state: _RowState) -> None:
        verdicts = state.verdicts
        for pair in self.pairs:
            first, second = verdicts[pair[0]], verdicts[pair[1]]
            if first is not None and second is not None:
                self.both[pair] += 1
                self.agree[pair] += first == second
        self.rows_done += 1
        if self.progress is not None:
            self.progress(self.rows_done, self.errors, time.monotonic() - self.started)

    def _report(self) -> EvalReport:
        return EvalReport(
            guards={name: tally.metrics() for name, tally in self.tallies.items()},
            agreement={pair: self.agree[pair] / self.both[pair] for pair in self.pairs if self.both[pair]},
            rows=self.rows,
            labelled=self.labelled,
            resumed=self.resumed,
            elapsed=time.monotonic() - self.started,
        )


def _failure(exc: Exception, latency: float, calls: int, *, transient: bool) -> Outcome:
    return Outcome(
        action=None,
        categories=(),
        reasons=(),
        latency=latency,
        vendor_calls=calls,
        error=type(exc).__name__,
        transient=transient,
    )
