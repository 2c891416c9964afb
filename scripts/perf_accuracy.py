"""Print the speed model's error against every published measurement (knowledge/perf_measurements.yaml).

    .venv/bin/python scripts/perf_accuracy.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.physics.accuracy import TARGETS, check_all  # noqa: E402

k = load_knowledge()
checks = check_all(k)
print(f"{'row':<44}{'metric':<24}{'published':>11}{'modelled':>11}{'error':>9}  within")
for c in checks:
    row = k.perf_measurements[c.row]
    err = f"{c.error_pct:+.1f}%" if c.error_pct is not None else "-"
    model = f"{c.modelled:,.1f}" if c.modelled is not None else "-"
    ok = "yes" if c.within_target else "NO"
    print(f"{c.row[:43]:<44}{c.metric:<24}{c.published:>11,.1f}{model:>11}{err:>9}  {ok:<4} {c.note}")
by_metric = {}
for c in checks:
    by_metric.setdefault(c.metric, []).append(c)
for metric, rows in by_metric.items():
    inside = sum(c.within_target for c in rows)
    print(f"{metric}: {inside}/{len(rows)} within {TARGETS[metric]:g}%")
