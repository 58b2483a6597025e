"""The pure statistics of scripts/bench_capture.py (no timing here: nothing runs a model)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_capture", ROOT / "scripts" / "bench_capture.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_capture"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def test_summarize_median_quartiles_extremes(bc: ModuleType) -> None:
    s = bc.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.q1, s.q3, s.lo, s.hi, s.n) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert s.iqr == 2.0
    one = bc.summarize([7.0])
    assert (one.median, one.q1, one.q3, one.iqr) == (7.0, 7.0, 7.0, 0.0)
    with pytest.raises(ValueError):
        bc.summarize([])


def test_quartiles_stay_inside_the_data(bc: ModuleType) -> None:
    s = bc.summarize([10.0, 10.0, 10.0, 100.0])
    assert s.lo <= s.q1 <= s.median <= s.q3 <= s.hi


def test_noisy_when_the_spread_exceeds_the_effect(bc: ModuleType) -> None:
    assert not bc.summarize([2.9, 3.0, 3.1]).noisy  # a clear +3 ms
    assert bc.summarize([-1.0, 0.1, 1.0]).noisy  # ≈ 0 ± 1: noise
    assert bc.summarize([-3.1, -3.0, -2.9]).median == -3.0
    assert not bc.summarize([-3.1, -3.0, -2.9]).noisy  # the sign does not matter, the size does


def test_paired_diffs_and_ratios(bc: ModuleType) -> None:
    assert bc.paired_diffs([10.0, 20.0], [11.0, 23.0]) == [1.0, 3.0]
    r = bc.paired_ratios([1.0, 1.0, 1.0], [4.0, 0.0, -1.0])
    assert r[0] == 0.25 and math.isnan(r[1]) and math.isnan(r[2])
    with pytest.raises(ValueError):
        bc.paired_diffs([1.0], [1.0, 2.0])


def test_paired_diffs_cancel_drift(bc: ModuleType) -> None:
    # Both configurations drift by the same +10 ms a round; the per-round difference does not.
    plain = [20.0 + 10 * r for r in range(6)]
    scopes = [p + 2.0 for p in plain]
    assert bc.summarize(scopes).noisy is False
    d = bc.summarize(bc.paired_diffs(plain, scopes))
    assert d.median == 2.0 and d.iqr == 0.0
    assert bc.summarize(plain).iqr > d.median  # unpaired, the drift would swamp the effect


def test_rotation_puts_each_config_first_equally(bc: ModuleType) -> None:
    configs = ("plain", "scopes", "sync_hooks")
    orders = [bc.rotation(configs, r) for r in range(6)]
    assert orders[0] == ["plain", "scopes", "sync_hooks"]
    assert orders[1] == ["scopes", "sync_hooks", "plain"]
    assert orders[2] == ["sync_hooks", "plain", "scopes"]
    assert orders[3] == orders[0]
    for position in range(3):
        firsts = [o[position] for o in orders]
        assert sorted(firsts) == sorted(configs * 2)


def test_verdict(bc: ModuleType) -> None:
    sync = bc.summarize([18.0, 19.0, 20.0, 21.0])
    met = bc.summarize([0.1, 0.15, 0.2, 0.25])
    assert bc.verdict(met, sync, rounds=4) == "met"
    assert bc.verdict(bc.summarize([0.6, 0.7, 0.8, 0.9]), sync, rounds=4) == "NOT met"
    assert bc.verdict(bc.summarize([0.3, 0.45, 0.55, 0.7]), sync, rounds=4) == "unclear"
    # The yardstick must be resolved: sync-hook overhead within noise, or too few usable rounds.
    assert bc.verdict(met, bc.summarize([-5.0, 1.0, 6.0]), rounds=4) == "unclear"
    assert bc.verdict(met, sync, rounds=9) == "unclear"
    assert bc.verdict(bc.summarize([math.nan]), sync, rounds=1) == "unclear"


def test_fmt_cell(bc: ModuleType) -> None:
    s = bc.summarize([20.0, 21.0, 22.0])
    assert bc.fmt_cell(s) == "21.00 ms [20.50…21.50]"
    d = bc.summarize([-1.0, 0.1, 1.0])
    assert bc.fmt_cell(d, flag=True, signed=True) == "+0.10 ms [−0.45…0.55]†"
    neg = bc.summarize([-3.1, -3.0, -2.9])
    assert bc.fmt_cell(neg, flag=True, signed=True) == "−3.00 ms [−3.05…−2.95]"
    assert bc.fmt_cell(bc.summarize([0.15]), unit="", digits=3) == "0.150 [0.150…0.150]"


def test_parse_case(bc: ModuleType) -> None:
    assert bc.parse_case("llama-3.1-8b", 215) == ("llama-3.1-8b", 215)
    assert bc.parse_case("llama-3.1-8b:4096", 215) == ("llama-3.1-8b", 4096)
    with pytest.raises(SystemExit):
        bc.parse_case("llama-3.1-8b:long", 215)
    with pytest.raises(SystemExit):
        bc.parse_case("llama-3.1-8b:0", 215)
