import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def benchmark_root():
    """The benchmark data root for tests: $PAPERLIB_DATA, else ../shared/datasets, else None."""
    env = os.environ.get("PAPERLIB_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED if SHARED.is_dir() else None


@pytest.fixture(scope="session")
def data_root():
    root = benchmark_root()
    if root is None:
        pytest.skip("benchmark data not available (set PAPERLIB_DATA)")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache from tests."""
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
