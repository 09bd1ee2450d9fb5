"""The on-disk store of slow theory results: exact round trips, recomputation of torn files, no pickle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from infalign_core import theory_store


@dataclass(frozen=True)
class Inner:
    """A nested result, as OptimalGap holds an OptimalFrontier."""

    n: int
    kl: np.ndarray


@dataclass(frozen=True)
class Outer:
    """A result with a string, a float, an array and a nested dataclass."""

    mode: str
    beta: float
    rates: np.ndarray
    inner: Inner


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(theory_store.ENV_VAR, str(tmp_path))
    return tmp_path


def _value() -> Outer:
    return Outer("best", 0.25, np.array([0.1, np.nan, 0.9]), Inner(4, np.geomspace(1e-3, 3.0, 7)))


def test_a_stored_result_reads_back_equal_without_recomputing(store):
    first = theory_store.load_or_compute("demo", (4, "best"), Outer, _value)
    again = theory_store.load_or_compute("demo", (4, "best"), Outer, lambda: pytest.fail("recomputed"))
    assert again.mode == first.mode and again.beta == first.beta and again.inner.n == 4
    np.testing.assert_array_equal(again.rates, first.rates)
    np.testing.assert_array_equal(again.inner.kl, first.inner.kl)
    assert isinstance(again.inner, Inner)


def test_other_arguments_are_stored_apart(store):
    theory_store.load_or_compute("demo", (4, "best"), Outer, _value)
    other = Outer("worst", 1.0, np.zeros(2), Inner(8, np.ones(1)))
    assert theory_store.load_or_compute("demo", (8, "worst"), Outer, lambda: other).mode == "worst"
    assert len(list(store.glob("demo-*.npz"))) == 2


def test_a_torn_file_is_recomputed_and_rewritten(store):
    theory_store.load_or_compute("demo", (4, "best"), Outer, _value)
    (path,) = store.glob("demo-*.npz")
    path.write_bytes(path.read_bytes()[:40])
    calls = []
    value = theory_store.load_or_compute("demo", (4, "best"), Outer, lambda: calls.append(1) or _value())
    assert calls == [1] and value.inner.n == 4
    theory_store.load_or_compute("demo", (4, "best"), Outer, lambda: pytest.fail("recomputed twice"))


def test_files_hold_no_pickled_objects(store):
    theory_store.load_or_compute("demo", (4, "best"), Outer, _value)
    (path,) = store.glob("demo-*.npz")
    with np.load(path, allow_pickle=False) as stored:  # raises if any entry needed pickle
        assert all(stored[name].dtype != object for name in stored.files)


def test_the_key_includes_the_theory_code_version(store, monkeypatch):
    theory_store.load_or_compute("demo", (4, "best"), Outer, _value)
    monkeypatch.setattr(theory_store, "code_version", lambda: "edited")
    calls = []
    theory_store.load_or_compute("demo", (4, "best"), Outer, lambda: calls.append(1) or _value())
    assert calls == [1]
