"""CPU seconds of the worst single requests we found (tests/test_hostile.py CASES): median of --runs fresh calls
each, in a fresh process per case so no cache from another case helps. Issue 11's rule: about 1 s at most.

    .venv/bin/python scripts/hostile_costs.py [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cases():
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("hostile_cases", ROOT / "tests" / "test_hostile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in a child process
    args = parser.parse_args()
    if args.case is not None:
        module = _cases()
        print(module.cost(module.CASES[args.case]))
        return
    names = list(_cases().CASES)
    width = max(len(n) for n in names)
    for name in names:
        runs = [float(subprocess.run([sys.executable, __file__, "--case", name], check=True, capture_output=True,
                                     text=True, cwd=ROOT).stdout.split()[-1]) for _ in range(args.runs)]
        print(f"{name:<{width}}  median {statistics.median(runs):.2f} s CPU (max {max(runs):.2f}, n={args.runs})")


if __name__ == "__main__":
    main()
