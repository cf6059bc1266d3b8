"""Guards for tests: `StaticGuard` always says the same thing, `FakeGuard` follows a rule."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

from .._exceptions import GuardError
from .._guard import InProcessGuard
from .._models import Action, Content, Verdict

__all__ = ["FakeGuard", "Rule", "StaticGuard"]

Rule = Callable[[Content], "Action | Verdict | bool"]


#: How many of the latest contents a fake guard keeps by default.
DEFAULT_HISTORY = 1000


class _RecordingGuard(InProcessGuard):
    """Counts every check and keeps the latest ``history`` contents (0: none).

    A bounded buffer: a fake guard left in a long-running test or benchmark neither grows
    without end nor makes the garbage collector walk every content it ever saw.
    """

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be a number of contents, 0 or more, not {history!r}")
        self._seen: deque[Content] = deque(maxlen=history)
        self._calls = 0
        self._seen_lock = threading.Lock()

    @property
    def seen(self) -> list[Content]:
        """The latest `Content` this guard was asked about (up to ``history``), oldest first."""
        with self._seen_lock:
            return list(self._seen)

    @property
    def calls(self) -> int:
        """How many checks were made (all of them, whatever ``history`` keeps)."""
        with self._seen_lock:
            return self._calls

    def _record(self, content: Content) -> None:
        with self._seen_lock:
            self._calls += 1
            if self._seen.maxlen:
                self._seen.append(content)

    def reset(self) -> None:
        """Forget the recorded contents and the count."""
        with self._seen_lock:
            self._seen.clear()
            self._calls = 0


class StaticGuard(_RecordingGuard):
    """Always gives the same verdict, or always raises the same error.

    Args:
        action: the action of every verdict (`Action.ALLOW` by default).
        reasons: the reasons of every verdict.
        error: if given, every check raises it instead (e.g. ``GuardUnavailable("down")``).
        name: the guard name put on verdicts.
        history: how many of the latest contents `seen` keeps (0: none; `calls` counts all).

    Example::

        guard = StaticGuard(Action.BLOCK, reasons=["prompt_injection"])
    """

    def __init__(
        self,
        action: Action = Action.ALLOW,
        *,
        reasons: Sequence[str] = (),
        error: GuardError | None = None,
        name: str = "static",
        history: int = DEFAULT_HISTORY,
    ) -> None:
        super().__init__(history)
        self.name = name
        self.error = error
        self.verdict = Verdict(action=Action(action), reasons=list(reasons), guard=name, id="static")

    def _decide(self, content: Content) -> Verdict:
        self._record(content)
        if self.error is not None:
            raise self.error
        return self.verdict

    def __repr__(self) -> str:
        if self.error is not None:
            return f"StaticGuard(error={type(self.error).__name__})"
        return f"StaticGuard({self.verdict.action.name}, reasons={self.verdict.reasons!r})"


class FakeGuard(_RecordingGuard):
    """Decides with a rule you write, and records every `Content` it was asked about.

    Args:
        rule: called with the `Content`; returns an `Action`, a `Verdict`, or a bool meaning
            "block". It may also raise a `GuardError` to simulate a failing guard.
        name: the guard name put on verdicts.
        history: how many of the latest contents `seen` keeps (0: none; `calls` counts all).

    Example::

        guard = FakeGuard(lambda content: "secret" in content.as_text())
    """

    def __init__(self, rule: Rule, *, name: str = "fake", history: int = DEFAULT_HISTORY) -> None:
        super().__init__(history)
        self.rule = rule
        self.name = name

    def _decide(self, content: Content) -> Verdict:
        self._record(content)
        outcome = self.rule(content)
        if isinstance(outcome, Verdict):
            return outcome
        if isinstance(outcome, Action):
            action = outcome
        elif isinstance(outcome, bool):
            action = Action.BLOCK if outcome else Action.ALLOW
        else:
            raise TypeError(
                f"FakeGuard rule must return an Action, a Verdict or a bool, not {type(outcome).__name__}"
            )
        reasons = ["fake_rule"] if action is Action.BLOCK else []
        return Verdict(action=action, reasons=reasons, guard=self.name, id=f"fake-{self.calls}")

    def __repr__(self) -> str:
        return f"FakeGuard({getattr(self.rule, '__name__', 'rule')})"
