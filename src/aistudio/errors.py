"""Errors a user can fix. Scripts turn them into one line per problem and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A problem in the user's input (a file, a key, a field), never a bug in our code."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
