"""scripts/device_measure.py without a GPU and without torch: --help, --dry-run, --check and its pure helpers.

The script measures an H200 (issue 10 item 6) where one is lent; nothing here needs one. --dry-run and --help are
run with a PYTHONPATH whose `torch` and `transformers` raise on import, so they prove that neither is imported.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advisor.knowledge import load_knowledge
from advisor.physics.architecture import architecture_from_config, tensor_inventory
from advisor.physics.memory import kv_bytes_per_token_full

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "device_measure.py"
_SPEC = importlib.util.spec_from_file_location("device_measure", SCRIPT)
assert _SPEC and _SPEC.loader
dm = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("device_measure", dm)  # dataclasses look the module up by name
_SPEC.loader.exec_module(dm)


@pytest.fixture()
def no_torch_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose `torch` and `transformers` fail on import, ahead of anything installed."""
    for name in ("torch", "transformers"):
        pkg = tmp_path / "poison" / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"raise ImportError('{name} must not be imported here')\n")
    return {"PYTHONPATH": str(tmp_path / "poison"), "PATH": "/usr/bin:/bin"}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=env)


# ------------------------------------------------------------------------------------------ command line
def test_help_without_torch(no_torch_path):
    done = _run("--help", env=no_torch_path)
    assert done.returncode == 0, done.stderr
    for flag in ("--out", "--budget", "--dry-run", "--check", "--smoke", "--device", "--steps", "--models"):
        assert flag in done.stdout


def test_dry_run_prints_the_plan_without_torch(no_torch_path):
    done = _run("--dry-run", env=no_torch_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "21 shapes x 4 precisions = 84 rows" in out
    for shape in ("1 4096 4096", "8 8192 8192", "128 28672 8192", "2048 4096 4096", "8192 8192 8192",
                  "16384 28672 8192"):
        assert shape in out
    for op in ("torch.matmul", "torch._scaled_mm", "use_fast_accum", "torch._int_mm"):
        assert op in out
    assert "4 GiB bf16" in out
    assert "meta-llama/Llama-3.1-8B-Instruct" in out and "Qwen/Qwen2.5-7B-Instruct" in out
    assert "1024-token prompt" in out and "128 batch-1 decode steps" in out
    assert "bf16 989.4, fp8 1978.9, int8 1978.9 TFLOPS, HBM 4.8 TB/s" in out
    total = int(re.search(r"estimated total: ~(\d+) s of the 420 s budget", out).group(1))
    assert 60 < total <= 420  # and so well under the issue's 8 minutes


def test_dry_run_follows_steps_and_models(no_torch_path):
    done = _run("--dry-run", "--steps", "matmul", "--models", "Qwen/Qwen2.5-7B-Instruct", env=no_torch_path)
    assert done.returncode == 0, done.stderr
    assert "bandwidth (~" not in done.stdout and "model Qwen" not in done.stdout


@pytest.mark.parametrize("args", [("--device", "cpu"), ("--steps", "matmul,nothing"), ("--models", "gpt2"),
                                  ("--budget", "5")])
def test_bad_arguments_are_refused(no_torch_path, args):
    done = _run("--dry-run", *args, env=no_torch_path)
    assert done.returncode == 2
    assert "error:" in done.stderr


# ------------------------------------------------------------------------------------------ --check
def _row(rid: str, kind: str = "matmul", value: float | None = 700.0, unit: str = "TFLOPS", **extra) -> dict:
    row = {"id": rid, "kind": kind, "machine": "NVIDIA H200 (139.8 GiB), driver 580.159.03, CUDA 13.0, "
           "torch 2.11.0+cu130", "date": "2026-11-30", "precision": "bf16", "shape": "M=8192 N=8192 K=8192",
           "value": value, "unit": unit, "fraction_of_peak": None if value is None else 0.7075,
           "source": "scripts/device_measure.py run on NVIDIA H200 (139.8 GiB) 2026-11-30"}
    row.update(extra)
    return row


def _sample_rows() -> list[dict]:
    return [
        _row("h200-2026-11-30-matmul-bf16-m8192-n8192-k8192", time_ms=1.57),
        _row("h200-2026-11-30-bandwidth-copy", kind="bandwidth", value=4300.0, unit="GB/s"),
        _row("h200-2026-11-30-model-memory-llama-3-1-8b-instruct-kv-per-token", kind="model_memory",
             value=131072, unit="bytes/token", fraction_of_peak=None),
        _row("h200-2026-11-30-model-decode-llama-3-1-8b-instruct-tpot-graph", kind="model_decode", value=4.1,
             unit="ms"),
        _row("h200-2026-11-30-matmul-int8-m1-n4096-k4096", value=None, error="RuntimeError: out of memory"),
        _row("h200-2026-11-30-model-decode-qwen2-5-7b-instruct-ttft", kind="model_decode", value=None, unit="ms",
             skipped="time budget (12 s left)"),
    ]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_check_accepts_a_valid_rows_file(tmp_path, no_torch_path, fmt):
    doc = {"generated_by": "scripts/device_measure.py", "rows": _sample_rows()}
    path = tmp_path / f"rows.{fmt}"
    path.write_text(yaml.safe_dump(doc) if fmt == "yaml" else json.dumps(doc))
    done = _run("--check", str(path), env=no_torch_path if fmt == "json" else None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 rows (4 measured, 2 with error or skipped)" in done.stdout


def test_check_rejects_bad_rows(tmp_path):
    rows = _sample_rows()
    rows[0]["value"] = -3.0  # not positive
    rows[1]["fraction_of_peak"] = 1.2  # above the datasheet peak
    rows[2]["unit"] = "GB/s"  # wrong unit for the kind
    rows[3]["date"] = "30/11/2026"  # not ISO
    del rows[4]["source"]  # missing field
    rows[5]["value"] = 3.0  # a skipped row with a value
    rows.append(dict(rows[0], value=5.0))  # duplicate id
    rows.append(_row("x", kind="speed"))  # unknown kind
    path = tmp_path / "rows.yaml"
    path.write_text(yaml.safe_dump({"rows": rows}))
    done = _run("--check", str(path))
    assert done.returncode == 1
    for expected in ("must be a positive number", "fraction_of_peak 1.2", "does not fit kind model_memory",
                     "is not an ISO date", "missing source", "carries no value", "duplicate id",
                     "kind 'speed' is not one of"):
        assert expected in done.stdout, expected


def test_check_reports_an_unreadable_file(tmp_path):
    path = tmp_path / "rows.yaml"
    path.write_text("just: a mapping\n")
    assert _run("--check", str(path)).returncode == 1
    assert _run("--check", str(tmp_path / "missing.yaml")).returncode == 1


# ------------------------------------------------------------------------------------------ pure helpers
def test_tflops_and_bandwidth_arithmetic():
    assert dm.matmul_flops(2, 3, 4) == 48
    # 8192^3 in 1.4 ms: 2 * 8192^3 / 1.4e-3 / 1e12
    assert dm.tflops(8192, 8192, 8192, 1.4) == pytest.approx(785.36, abs=0.01)
    assert dm.tflops(1, 4096, 4096, 0.01) == pytest.approx(3.355, abs=0.001)
    assert dm.gb_per_s(8.6e9, 2.0) == pytest.approx(4300.0)
    assert dm.bandwidth_bytes_moved("copy", 2**32) == 2**33
    assert dm.bandwidth_bytes_moved("read", 2**32) == dm.bandwidth_bytes_moved("write", 2**32) == 2**32
    assert dm.fraction_of_peak(4300.0, 4800.0) == pytest.approx(0.8958)
    assert dm.fraction_of_peak(700.0, None) is None and dm.fraction_of_peak(None, 989.4) is None
    assert dm.sig(785.36123) == 785.36 and dm.sig(0.000123456789) == 0.00012346
    with pytest.raises(ValueError):
        dm.tflops(1, 1, 1, 0.0)
    with pytest.raises(ValueError):
        dm.gb_per_s(1, -1.0)


def test_operands_calls_and_l2_rotation():
    assert dm.operand_bytes("bf16", 4096, 4096) == 32 * 2**20
    assert dm.operand_bytes("fp8", 4096, 4096) == dm.operand_bytes("int8", 4096, 4096) == 16 * 2**20
    l2 = 60 * 2**20
    assert dm.copies_to_defeat_l2(32 * 2**20, l2) == 8  # 8 x 32 MiB >= 4 x 60 MiB
    assert dm.copies_to_defeat_l2(28672 * 8192 * 2, l2) == 1  # 470 MB is far beyond L2
    assert dm.copies_to_defeat_l2(1024, l2) == 64  # capped
    assert dm.calls_per_timing(0.005) == 400  # 2 ms of 5 us calls
    assert dm.calls_per_timing(10.0) == 1
    assert dm.calls_per_timing(1e-6) == 1000 and dm.calls_per_timing(0.0) == 1000
    assert dm.calls_per_timing(3.0, target_ms=0.0) == 1
    assert [dm.int8_timed_m(m) for m in (1, 8, 16, 17, 32, 128)] == [32, 32, 32, 17, 32, 128]


def test_matmul_cases_cover_the_issue_and_are_unique():
    cases = dm.matmul_cases()
    assert len(cases) == len(set(cases)) == 21
    assert (8192, 8192, 8192) in cases
    for m in (1, 8, 32, 128, 2048, 8192, 16384):
        for n, k in ((4096, 4096), (8192, 8192), (28672, 8192)):
            assert (m, n, k) in cases
    assert [c[0] for c in cases[:12]] == sorted(c[0] for c in cases[:12])  # decode-like first
    for _m, n, k in cases:  # torch._scaled_mm on CUDA: K and N multiples of 16; torch._int_mm: multiples of 8
        assert k % 16 == 0 and n % 16 == 0
    assert dm.CHECK_MNK in cases
    smoke = dm.matmul_cases(smoke=True)
    assert all(m * n * k <= 256 * 256 * 128 for m, n, k in smoke)


def test_time_estimates_fit_the_budget():
    est = dm.estimate_plan_s()
    assert set(est) == {"identity", "matmul", "bandwidth", *(f"model:{m}" for m in dm.MODEL_CONFIGS)}
    assert all(v > 0 for v in est.values())
    assert sum(est.values()) <= dm.DEFAULT_BUDGET_S - dm.RESERVE_S
    # the big prefill product takes ~10 ms in bf16 at 70% of the peak; at least 9 timed regions of it
    assert dm.estimate_matmul_s(16384, 28672, 8192, "bf16") > 9 * 2 * 16384 * 28672 * 8192 / (989.4e12)
    assert dm.estimate_matmul_s(1, 4096, 4096, "int8") == dm.estimate_matmul_s(32, 4096, 4096, "int8")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_skip_logic():
    clock = FakeClock()
    budget = dm.Budget(100.0, clock=clock, reserve_s=10.0)
    assert budget.elapsed() == 0.0 and budget.left() == 100.0
    assert budget.allows(90.0) and not budget.allows(90.1)
    clock.now += 60.0
    assert budget.elapsed() == 60.0 and budget.left() == 40.0
    assert budget.allows(30.0) and not budget.allows(31.0)
    clock.now += 50.0  # past the budget: nothing more runs
    assert budget.left() < 0 and not budget.allows(0.0)


def test_machine_names_and_peaks():
    ident = {"name": "NVIDIA H200", "total_memory_gib": 139.8, "driver": "580.159.03", "cuda_runtime": "13.0",
             "torch": "2.11.0+cu130"}
    assert dm.machine_string(ident) == "NVIDIA H200 (139.8 GiB), driver 580.159.03, CUDA 13.0, torch 2.11.0+cu130"
    assert dm.machine_slug("NVIDIA H200") == "h200"
    assert dm.machine_slug("NVIDIA GeForce RTX 4090") == "geforce-rtx-4090"
    assert dm.peaks_for("NVIDIA H200")["bf16"] == 989.4
    assert dm.peaks_for("NVIDIA H200")["fp8"] == dm.peaks_for("NVIDIA H200")["int8"] == 1978.9
    assert dm.peaks_for("NVIDIA A100-SXM4-80GB") is None
    assert "datasheet" in dm.PEAKS["H200"]["source"]


def test_rows_the_script_writes_pass_its_own_check(tmp_path):
    """Rows made by Run.row, including every skipped / failed row, are valid and have unique ids."""
    run = dm.Run(dm.parse_args(["--out", str(tmp_path / "rows.yaml")]))
    run.identity = {"name": "NVIDIA H200", "total_memory_gib": 139.8, "driver": "580.159.03",
                    "cuda_runtime": "13.0", "torch": "2.11.0+cu130"}
    run.peaks = dm.peaks_for("NVIDIA H200")
    tpot = 4.2  # 16.06 GB of weights in 4.2 ms: 3.82 TB/s, 0.80 of 4.8
    run.row("model-decode-llama-3-1-8b-instruct-tpot-graph", "model_decode", "bf16", "batch=1 prompt=1024 new=128",
            tpot, "ms", dm.fraction_of_peak(16_060_522_496 / (tpot * 1e-3) / 1e12, run.peaks["hbm_tbps"]),
            model="meta-llama/Llama-3.1-8B-Instruct", check=None)
    run.matmul_skipped("time budget")
    run.bandwidth_skipped("time budget")
    for model in dm.MODEL_CONFIGS:  # a step that failed after its first row: only the missing rows are added
        run.model_rows_failed(model, "error", "RuntimeError: boom")
    run.model_rows_failed("Qwen/Qwen2.5-7B-Instruct", "skipped", "again")  # adds nothing: ids already there
    first = run.rows[0]
    assert first["id"] == f"h200-{run.date}-model-decode-llama-3-1-8b-instruct-tpot-graph"
    assert first["source"] == f"scripts/device_measure.py run on {run.machine} {run.date}"
    assert first["fraction_of_peak"] == pytest.approx(0.7967, abs=1e-4)
    assert "check" not in first  # None-valued details are left out
    assert len(run.rows) == 1 + 84 + 3 + 2 * len(dm.MODEL_FIGURES) - 1
    assert dm.check_rows(run.rows) == []
    run.write()
    assert dm.check_rows(dm.load_rows(tmp_path / "rows.yaml")) == []
    assert _run("--check", str(tmp_path / "rows.yaml")).returncode == 0


def test_rows_file_falls_back_to_json_without_pyyaml(tmp_path, monkeypatch):
    doc = {"rows": _sample_rows(), "machine": {"torch": type("TorchVersion", (str,), {})("2.11.0")}}
    assert dm.dump_rows(tmp_path / "a.yaml", doc) == "yaml"
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` now raises ImportError
    assert dm.dump_rows(tmp_path / "b.yaml", doc) == "json"
    assert json.loads((tmp_path / "b.yaml").read_text())["machine"]["torch"] == "2.11.0"
    assert dm.load_rows(tmp_path / "b.yaml") == _sample_rows()
    with pytest.raises(ValueError, match="PyYAML"):
        dm.load_rows(tmp_path / "a.yaml")
    monkeypatch.undo()
    assert dm.load_rows(tmp_path / "a.yaml") == _sample_rows()


def test_cache_bytes_and_prefix_helpers():
    class T:
        def __init__(self, shape):
            self.shape = shape

        def numel(self):
            return math.prod(self.shape)

        def element_size(self):
            return 2

    class Layer:
        def __init__(self):
            self.keys, self.values = T((1, 8, 1152, 128)), T((1, 8, 1152, 128))

    class Cache:
        layers = [Layer() for _ in range(32)]

    total, tokens = dm._cache_bytes(Cache())
    assert tokens == 1152 and total / tokens == 131072  # Llama-3.1-8B: 2 x 32 layers x 8 heads x 128 x 2 bytes
    assert dm._common_prefix([1, 2, 3, 4], [1, 2, 9, 4]) == 2 and dm._common_prefix([], [1]) == 0


# ------------------------------------------------------------------------------------------ the embedded configs
@pytest.mark.parametrize("model_id", list(dm.MODEL_CONFIGS))
def test_embedded_configs_match_the_catalog(model_id):
    """The config.json the script builds the model from has every value knowledge/models.yaml stores."""
    entry = load_knowledge().models[model_id]
    embedded = dm.MODEL_CONFIGS[model_id]
    for key, value in entry.config.items():
        assert embedded[key] == value, key
    arch = architecture_from_config(embedded)
    params = sum(t.params for t in tensor_inventory(arch))
    # counted by the engine; the same totals as transformers' own build of these configs (8.03 B, 7.62 B)
    assert params == {"meta-llama/Llama-3.1-8B-Instruct": 8030261248, "Qwen/Qwen2.5-7B-Instruct": 7615616512}[model_id]
    if model_id in dm.PUBLISHED_PARAMS:
        assert params == dm.PUBLISHED_PARAMS[model_id] == entry.published.params_total
    # what the model_memory kv-per-token row should read for a bf16 cache
    kv = kv_bytes_per_token_full(arch, load_knowledge().kv_formats["bf16"])
    assert kv == {"meta-llama/Llama-3.1-8B-Instruct": 131072, "Qwen/Qwen2.5-7B-Instruct": 57344}[model_id]
