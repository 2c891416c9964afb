"""Suite-wide rules: under CI a skipped test is a failure (a missing browser must not pass silently)."""

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"


# No test reaches the internet: the Hugging Face client points at a closed local port, reads only a private
# cache, and is offline unless a test starts its own hub (tests/hubserver.py) and says otherwise.
_HUB_HOME = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"pa-test-hf-{os.getpid()}")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HOME"] = _HUB_HOME
os.environ["HF_HUB_CACHE"] = os.path.join(_HUB_HOME, "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_TOKEN", None)
