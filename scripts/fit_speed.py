"""Fit each runtime's achievable fractions (knowledge/speed.yaml) to the published measurements.

Grid search per runtime over compute efficiency, memory efficiency and the per-step overhead; the objective
is the number of that runtime's rows within the issue's targets (25% latency, 35% throughput), then the mean
absolute error. Prints the best values; copying them into speed.yaml is a deliberate, reviewed edit.

    .venv/bin/python scripts/fit_speed.py
"""

import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.physics.accuracy import predict  # noqa: E402

k = load_knowledge()
COMPUTE = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
MEMORY = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
STEP_MS = [0.5, 1.0, 2.0, 4.0]

for runtime in sorted({r.runtime for r in k.perf_measurements.values()}):
    rows = [r for r in k.perf_measurements.values() if r.runtime == runtime]
    speed_id = next(sp.id for sp in k.speed.values() if sp.runtime == runtime)
    best = None
    for c, m, st in itertools.product(COMPUTE, MEMORY, STEP_MS):
        trial = k.speed[speed_id].model_copy(update={"compute_efficiency": c, "memory_efficiency": m,
                                                      "step_overhead_ms": st})
        kk = k.model_copy(update={"speed": {**k.speed, speed_id: trial}})
        checks = [predict(r, kk) for r in rows]
        inside = sum(ch.within_target for ch in checks)
        mae = statistics.mean(abs(ch.error_pct) for ch in checks if ch.error_pct is not None)
        key = (-inside, mae)
        if best is None or key < best[0]:
            best = (key, c, m, st)
    (neg_inside, mae), c, m, st = best
    print(f"{runtime}: {-neg_inside}/{len(rows)} rows within target, mean |error| {mae:.1f}% "
          f"-> compute_efficiency {c}, memory_efficiency {m}, step_overhead_ms {st}")
