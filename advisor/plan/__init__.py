"""The plan: the document rendered from a decision (:mod:`.document`), its commands (:mod:`.commands`),
YAML import/export and permalinks (:mod:`.permalink`). ``build``, ``dump`` and ``load`` are re-exported."""

from advisor.plan.document import MAX_PLAN_BYTES, SCHEMA_VERSION, build, dump, load

__all__ = ["MAX_PLAN_BYTES", "SCHEMA_VERSION", "build", "dump", "load"]
