"""Guards for tests: `StaticGuard` always says the same thing, `FakeGuard` follows a rule."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from .._exceptions import GuardError
from .._guard import InProcessGuard
from .._models import Action, Content, Verdict

__all__ = ["FakeGuard", "Rule", "StaticGuard"]

Rule = Callable[[Content], "Action | Verdict | bool"]


class _RecordingGuard(InProcessGuard):
    def __init__(self) -> None:
        self._seen: list[Content] = []
        self._seen_lock = threading.Lock()

    @property
    def seen(self) -> list[Content]:
        """Every `Content` this guard was asked about, in order (a copy)."""
        with self._seen_lock:
            return list(self._seen)

    @property
    def calls(self) -> int:
        """How many checks were made."""
        with self._seen_lock:
            return len(self._seen)

    def _record(self, content: Content) -> None:
        with self._seen_lock:
            self._seen.append(content)

    def reset(self) -> None:
        """Forget the recorded contents."""
        with self._seen_lock:
            self._seen.clear()


class StaticGuard(_RecordingGuard):
    """Always gives the same verdict, or always raises the same error.

    Args:
        action: the action of every verdict (`Action.ALLOW` by default).
        reasons: the reasons of every verdict.
        error: if given, every check raises it instead (e.g. ``GuardUnavailable("down")``).
        name: the guard name put on verdicts.

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
    ) -> None:
        super().__init__()
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

    Example::

        guard = FakeGuard(lambda content: "secret" in content.as_text())
    """

    def __init__(self, rule: Rule, *, name: str = "fake") -> None:
        super().__init__()
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
