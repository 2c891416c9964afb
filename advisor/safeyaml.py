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


def load(text: str | bytes) -> Any:
    """Parse one YAML document with the safe loader, refusing aliases. Raises yaml.YAMLError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    # without a '*' no alias can occur, and the C loader is faster
    loader = _BASE(text) if "*" not in text else _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
