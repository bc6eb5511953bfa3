"""Given/when/then specifications for deciders (after Emmett's DeciderSpecification)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

import pytest

from services.runtime.decider import C, Decider, E, S


@dataclass(frozen=True)
class _When(Generic[C, S, E]):
    decider: Decider[C, S, E]
    history: Sequence[E]
    command: C

    def then(self, expected: Sequence[E]) -> None:
        state = self.decider.fold(self.history)
        assert list(self.decider.decide(self.command, state)) == list(expected)

    def raises(self, error: type[Exception], match: str | None = None) -> Exception:
        state = self.decider.fold(self.history)
        with pytest.raises(error, match=match) as caught:
            self.decider.decide(self.command, state)
        return caught.value


@dataclass(frozen=True)
class _Given(Generic[C, S, E]):
    decider: Decider[C, S, E]
    history: Sequence[E]

    def when(self, command: C) -> _When[C, S, E]:
        return _When(self.decider, self.history, command)


@dataclass(frozen=True)
class DeciderSpec(Generic[C, S, E]):
    """`spec.given([events]).when(command).then([events])` or `.raises(SomeError)`."""

    decider: Decider[C, S, E]

    def given(self, history: Sequence[E] = ()) -> _Given[C, S, E]:
        return _Given(self.decider, history)
