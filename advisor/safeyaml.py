"""YAML from users (plans, request files, model-card front matter): the safe subset, with aliases refused.

An alias lets a few bytes expand into an exponentially large document ("billion laughs"); nothing a user
legitimately sends needs one, so :func:`load` rejects them instead of expanding them.
"""

from __future__ import annotations

from typing import Any

import yaml

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted", event.start_mark)
        return super().compose_node(parent, index)


class InputYAMLError(yaml.YAMLError):
    """A document the safe loader parsed but this tool refuses (too deep, a number too long); `problem` says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, None


def load(text: str | bytes) -> Any:
    """Parse one YAML document with the safe loader, refusing aliases, nesting past Python's recursion limit and
    integers of more than 4,300 digits. Raises yaml.YAMLError (its `problem` says what is wrong)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    # without a '*' no alias can occur, and the C loader is faster
    loader = _BASE(text) if "*" not in text else _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise InputYAMLError("nested too deeply") from None
    except ValueError as exc:  # int('9' * 5000): Python refuses integers of more than 4,300 digits
        digits = "integer string conversion" in str(exc)
        raise InputYAMLError("an integer has more than 4,300 digits" if digits else "a value cannot be read") from None
    finally:
        loader.dispose()
