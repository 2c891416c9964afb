"""The knowledge base: table schemas (:mod:`.schema`), loading and checks (:mod:`.loader`), display rows
(:mod:`.tables`). Import the row types from :mod:`advisor.knowledge.schema`."""

from advisor.knowledge.loader import KNOWLEDGE_DIR, derived, load_knowledge, load_knowledge_from

__all__ = ["KNOWLEDGE_DIR", "derived", "load_knowledge", "load_knowledge_from"]
