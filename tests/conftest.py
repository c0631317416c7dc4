"""Fixtures every test shares: where the benchmark data is, a private cache, and no internet.

Tests that need the benchmark datasets take the ``data_root`` fixture: a folder holding
``DIR/<name>/...`` (laid out as in ``data_manifests/<name>.json``) for each of ``DATA_ROOT_SETS``,
the datasets the tests read. It is the first of these folders that holds all of them:

1. ``$PAPERLIB_DATA``;
2. ``../shared/datasets`` beside the repository: the workplace's offline copy of the datasets
   (a clone anywhere else has none and needs none);
3. the user cache (``$PAPERLIB_CACHE``, default ``~/.cache/paperlib``), where
   ``python -m paperlib data fetch NAME`` puts a dataset.

Without such a folder the test is skipped, and the reason names the missing datasets and how to
get them; pytest counts the skips in its summary (``-ra`` lists the reasons). A folder with only
some of them is not used, so that fetching part of them cannot turn skips into failures. A test
that needs another dataset reads it with ``data.image_paths(name, data_root=data_root)``, so that
its absence is a skip naming it (below).

Tests never reach for the internet: a benchmark dataset that the data layer would download is
a skip naming it instead, and every test runs with HTTP(S) proxies pointing at a closed local
port, so that a download tried anywhere else (pretrained weights, a notebook kernel or CLI
subprocess) fails at once. Loopback addresses bypass the proxy: the tests' own local servers work.
"""
import os
from pathlib import Path

import pytest

from paperlib import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"  # the workplace's offline copy
USER_CACHE = data.cache_dir()  # read at import, before _isolated_cache points PAPERLIB_CACHE elsewhere
DATA_ROOT_SETS = ("live1", "classic5", "set14", "bsds500", "imagenet-sample-1000")
BENCHMARKS = tuple(n for n in data.names() if n != data.DEMO)  # every manifest: never downloaded by a test
HOW = ("fetch with `python -m paperlib data fetch NAME` (into the user cache), or set PAPERLIB_DATA=DIR "
       "with DIR/NAME/ laid out as in data_manifests/NAME.json")
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens there, connections are refused at once


def _candidates() -> list:
    env = os.environ.get("PAPERLIB_DATA")
    return list(dict.fromkeys(([Path(env).expanduser()] if env else []) + [SHARED, USER_CACHE]))


def _missing(root: Path) -> list:
    return [n for n in DATA_ROOT_SETS if not (root / n).is_dir()]


def benchmark_root():
    """The first candidate folder (see the module docstring) that holds all of ``DATA_ROOT_SETS``, else None."""
    return next((root for root in _candidates() if not _missing(root)), None)


def _why_no_data() -> str:
    roots = _candidates()
    best = min(roots, key=lambda root: len(_missing(root)))
    missing = _missing(best)
    partial = len(missing) < len(DATA_ROOT_SETS)
    where = f"{best} holds the others" if partial else f"looked in {', '.join(map(str, roots))}"
    return f"benchmark datasets missing: {', '.join(missing)} ({where}); {HOW}"


def pytest_report_header(config):
    root = benchmark_root()
    return f"benchmark data: {root}" if root else f"benchmark data: none, data tests will skip ({_why_no_data()})"


@pytest.fixture(scope="session")
def data_root():
    root = benchmark_root()
    if root is None:
        pytest.skip(_why_no_data())
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache from tests."""
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """No test downloads: benchmark datasets are skipped by name, anything else meets a closed proxy."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, CLOSED_PORT)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    download = data.download

    def no_benchmark_download(name, split=None):
        if name in BENCHMARKS:  # pytest.skip raises a BaseException: the data layer's fallbacks do not catch it
            pytest.skip(f"benchmark dataset {name!r} is not available and tests never download it; "
                        + HOW.replace("NAME", name))
        return download(name, split)  # the tests' own toy manifests, served on 127.0.0.1

    monkeypatch.setattr(data, "download", no_benchmark_download)
