"""Errors a user can act on: each names the field, the bad value and the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AdvisorInputError(ValueError):
    """Bad input from a user (CLI flag, URL parameter, uploaded file).

    ``str(error)`` is one line fit to show as-is: it names the field and, where the choices are a
    known list, the closest valid ones.
    """

    def __init__(
        self,
        field: str,
        message: str,
        *,
        value: object = None,
        choices: Iterable[str] = (),
    ) -> None:
        self.field = field
        self.value = value
        self.choices = tuple(choices)
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{shown(self.field, 80, quote=False)}: {self.message}"
        text = " ".join(text.split())  # one line, whatever the input held
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 3] + "..."
        if self.choices:
            close = closest(str(self.value)[:200], self.choices) if self.value is not None else []
            if close:
                text += f"; closest valid: {', '.join(close)}"
            elif len(self.choices) <= 12:
                text += f"; valid: {', '.join(self.choices)}"
            else:
                text += f"; valid: {', '.join(self.choices[:12])}, ... ({len(self.choices)} in all)"
        return text


MAX_MESSAGE = 400  # characters of an error's own text; echoed input is cut well before this (shown())


def shown(value: object, limit: int = 60, quote: bool = True) -> str:
    """User input as an error message echoes it: repr (or str), on one line, cut to `limit` characters."""
    text = repr(value) if quote else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def closest(value: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid ids nearest to ``value`` (case-insensitive), best first: ids that start with it, then ids
    that contain it, then near spellings (also of the part after a '/', so "llama-3.1-8b" finds
    "meta-llama/Llama-3.1-8B-Instruct")."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    needle = value.lower().strip()
    tail = needle.rsplit("/", 1)[-1]
    hits: list[str] = []

    def add(key: str) -> None:
        if key not in hits:
            hits.append(key)

    if needle:
        for key in lowered:
            if key.startswith(needle) or key.rsplit("/", 1)[-1].startswith(tail):
                add(key)
        for key in lowered:
            if needle in key:
                add(key)
    for key in difflib.get_close_matches(needle, list(lowered), n=n, cutoff=0.5):
        add(key)
    tails = {c.rsplit("/", 1)[-1]: c for c in lowered}
    for key in difflib.get_close_matches(tail, list(tails), n=n, cutoff=0.5):
        add(tails[key])
    return [lowered[h] for h in hits[:n]]
