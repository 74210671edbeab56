"""End-to-end tests of rnnlab.data.forecast.prepare on small data, written under tmp_path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab.data.forecast import load_prepared, prepare
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SMALL_WINDOWS = ["task.lookback=14", "task.horizon=7"]  # needs >= 47 rows at 0.15/0.15


def daily_frame(n: int = 120, *, start: str = "2023-01-01", seed: int = 0) -> pd.DataFrame:
    """A trending daily series with a weekly cycle and a 0/1 promo covariate."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    value = 100 + 0.5 * t + 5 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "date": pd.date_range(start, periods=n, freq="D").strftime("%Y-%m-%d"),
            "value": value.round(3),
            "promo": (t % 10 == 0).astype(int),
        }
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file (and directory) under ``root/data``, with file contents."""
    data = root / "data"
    return {
        str(p.relative_to(data)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(data.rglob("*"))
    }


# ------------------------------------------------------------------------------ co2 default


@pytest.fixture(scope="module")
def co2_run(tmp_path_factory):
    from rnnlab import config

    root = tmp_path_factory.mktemp("co2")
    cfg = config.validate(config.compose([]))
    summary = prepare(cfg, RunPaths(root))
    return root, summary


@pytest.fixture(scope="module")
def co2_source() -> pd.Series:
    from statsmodels.datasets import co2

    return co2.load_pandas().data["co2"]


def test_co2_summary(co2_run):
    _, summary = co2_run
    assert summary == {"rows": 2284, "missing_filled": 59, "train": 1598, "val": 343, "test": 343}


def test_co2_raw_is_the_statsmodels_series_with_gaps(co2_run, co2_source):
    root, _ = co2_run
    assert sorted(p.name for p in (root / "data" / "raw").iterdir()) == ["co2.csv"]
    raw = pd.read_csv(root / "data" / "raw" / "co2.csv", parse_dates=["date"])
    assert list(raw.columns) == ["date", "co2"]
    assert len(raw) == 2284 == len(co2_source)
    assert raw["co2"].isna().sum() == 59
    np.testing.assert_array_equal(raw["co2"].to_numpy(), co2_source.to_numpy())
    np.testing.assert_array_equal(
        raw["date"].dt.strftime("%Y-%m-%d"), co2_source.index.strftime("%Y-%m-%d")
    )


def test_co2_prepared_series_is_filled_split_and_scaled(co2_run, co2_source):
    root, _ = co2_run
    series = pd.read_csv(root / "data" / "prepared" / "series.csv")
    meta = json.loads((root / "data" / "prepared" / "meta.json").read_text())
    assert list(series.columns) == ["date", "split", "co2"]
    assert not series.isna().any().any()
    assert series["split"].tolist() == ["train"] * 1598 + ["val"] * 343 + ["test"] * 343
    assert meta["split"] == {"val_start": 1598, "test_start": 1941}
    assert meta["rows"] == 2284 and meta["missing_filled"] == 59
    assert meta["missing_policy"] == "interpolate"
    assert meta["target_columns"] == ["co2"] and meta["covariate_columns"] == []
    assert meta["seasonal_period"] == 52

    filled = co2_source.interpolate(limit_direction="both").to_numpy()
    train = filled[:1598]
    assert meta["scaler"]["kind"] == "standard"
    np.testing.assert_allclose(meta["scaler"]["loc"], [train.mean()], rtol=1e-12)
    np.testing.assert_allclose(meta["scaler"]["scale"], [train.std()], rtol=1e-12)
    # the full series' statistics are clearly different (CO2 rises), so this can fail
    assert abs(filled.mean() - train.mean()) > 2
    # undoing the scaling gives back the filled series
    unscaled = series["co2"].to_numpy() * meta["scaler"]["scale"][0] + meta["scaler"]["loc"][0]
    np.testing.assert_allclose(unscaled, filled, rtol=1e-10)
    np.testing.assert_allclose(series["co2"][:1598].mean(), 0.0, atol=1e-9)


def test_co2_meta_hash_matches_raw_file(co2_run):
    root, _ = co2_run
    meta = json.loads((root / "data" / "prepared" / "meta.json").read_text())
    raw_bytes = (root / "data" / "raw" / "co2.csv").read_bytes()
    assert meta["raw_sha256"] == hashlib.sha256(raw_bytes).hexdigest()


def test_co2_load_prepared(co2_run):
    root, _ = co2_run
    prepared = load_prepared(root / "data" / "prepared")
    assert prepared.values.shape == (2284, 1)
    assert prepared.values.dtype == np.float32
    assert prepared.n_targets == 1
    assert prepared.split_range("train") == (0, 1598)
    assert prepared.split_range("val") == (1598, 1941)
    assert prepared.split_range("test") == (1941, 2284)
    assert str(prepared.times.iloc[0].date()) == "1958-03-29"
    assert prepared.scaler.kind == "standard"


def test_load_prepared_without_prepare_run(tmp_path):
    with pytest.raises(DataError, match=r"meta\.json not found.*prepare"):
        load_prepared(tmp_path / "data" / "prepared")


# ---------------------------------------------------------------------------- user CSV


def test_user_csv_univariate(tmp_path, csv_cfg):
    frame = daily_frame(120)
    cfg = csv_cfg(frame, overrides=SMALL_WINDOWS, covariate_columns=[])
    summary = prepare(cfg, RunPaths(tmp_path))
    assert summary == {"rows": 120, "missing_filled": 0, "train": 84, "val": 18, "test": 18}

    raw = pd.read_csv(tmp_path / "data" / "raw" / "csv.csv")
    assert list(raw.columns) == ["date", "value"]
    np.testing.assert_allclose(raw["value"], frame["value"])

    prepared = load_prepared(tmp_path / "data" / "prepared")
    assert prepared.meta["target_columns"] == ["value"]
    assert prepared.meta["covariate_columns"] == []
    assert prepared.values.shape == (120, 1)
    train = frame["value"].to_numpy()[:84]
    np.testing.assert_allclose(prepared.scaler.loc, [train.mean()])
    np.testing.assert_allclose(prepared.scaler.scale, [train.std()])
    restored = prepared.scaler.inverse(prepared.values.astype(np.float64))
    np.testing.assert_allclose(restored[:, 0], frame["value"], rtol=1e-6)


def test_user_csv_multivariate_with_covariate(tmp_path, csv_cfg):
    frame = daily_frame(100)
    cfg = csv_cfg(frame, overrides=SMALL_WINDOWS, scaling="minmax", covariate_columns=["promo"])
    summary = prepare(cfg, RunPaths(tmp_path))
    assert summary["rows"] == 100

    series = pd.read_csv(tmp_path / "data" / "prepared" / "series.csv")
    assert list(series.columns) == ["date", "split", "value", "promo"]
    prepared = load_prepared(tmp_path / "data" / "prepared")
    assert prepared.values.shape == (100, 2)
    assert prepared.n_targets == 1
    assert prepared.meta["covariate_columns"] == ["promo"]
    assert prepared.scaler.kind == "minmax"
    assert len(prepared.scaler.loc) == 2
    train = prepared.values[: prepared.bounds.val_start]
    np.testing.assert_allclose(train.min(axis=0), [0, 0], atol=1e-6)
    np.testing.assert_allclose(train.max(axis=0), [1, 1], atol=1e-6)
    np.testing.assert_array_equal(np.unique(series["promo"]), [0.0, 1.0])


def test_user_csv_unsorted_rows_are_sorted(tmp_path, csv_cfg):
    frame = daily_frame(60)
    shuffled = frame.sample(frac=1.0, random_state=1)
    prepare(csv_cfg(shuffled, overrides=SMALL_WINDOWS), RunPaths(tmp_path))
    raw = pd.read_csv(tmp_path / "data" / "raw" / "csv.csv")
    assert raw["date"].tolist() == frame["date"].tolist()
    np.testing.assert_allclose(raw["value"], frame["value"])


def test_user_csv_relative_path_is_resolved_against_root(tmp_path, csv_cfg):
    external = tmp_path / "data" / "external"
    external.mkdir(parents=True)
    daily_frame(60).to_csv(external / "mine.csv", index=False)
    cfg = csv_cfg(None, overrides=SMALL_WINDOWS, path="data/external/mine.csv")
    assert prepare(cfg, RunPaths(tmp_path))["rows"] == 60


def gappy_frame(n: int = 60) -> pd.DataFrame:
    frame = daily_frame(n)
    frame.loc[[5, 6, 30], "value"] = np.nan
    return frame


def test_user_csv_gaps_are_interpolated_but_kept_in_raw(tmp_path, csv_cfg):
    frame = gappy_frame()
    summary = prepare(csv_cfg(frame, overrides=SMALL_WINDOWS), RunPaths(tmp_path))
    assert summary["missing_filled"] == 3
    raw = pd.read_csv(tmp_path / "data" / "raw" / "csv.csv")
    assert raw["value"].isna().sum() == 3
    prepared = load_prepared(tmp_path / "data" / "prepared")
    restored = prepared.scaler.inverse(prepared.values.astype(np.float64))[:, 0]
    before, after = frame["value"][4], frame["value"][7]
    np.testing.assert_allclose(
        restored[5:7], [(2 * before + after) / 3, (before + 2 * after) / 3], rtol=1e-6
    )
    assert not np.isnan(restored).any()


def test_user_csv_drop_policy_removes_rows(tmp_path, csv_cfg):
    summary = prepare(
        csv_cfg(gappy_frame(), overrides=SMALL_WINDOWS, missing="drop"), RunPaths(tmp_path)
    )
    assert summary["rows"] == 57
    assert summary["missing_filled"] == 3


def test_user_csv_missing_error_policy_raises(tmp_path, csv_cfg):
    cfg = csv_cfg(gappy_frame(), overrides=SMALL_WINDOWS, missing="error")
    with pytest.raises(DataError, match=r"3 missing values.*interpolate, ffill or drop"):
        prepare(cfg, RunPaths(tmp_path))
    assert not (tmp_path / "data").exists()


def test_target_also_covariate_is_rejected(tmp_path, csv_cfg):
    cfg = csv_cfg(daily_frame(60), overrides=SMALL_WINDOWS, covariate_columns=["value"])
    with pytest.raises(DataError, match=r"\['value'\] are both targets and covariates"):
        prepare(cfg, RunPaths(tmp_path))


def test_no_target_columns_is_rejected(tmp_path, csv_cfg):
    cfg = csv_cfg(daily_frame(60), overrides=SMALL_WINDOWS, target_columns=[])
    with pytest.raises(DataError, match=r"target_columns` is empty"):
        prepare(cfg, RunPaths(tmp_path))


def test_csv_source_without_path(tmp_path, csv_cfg):
    cfg = csv_cfg(None, overrides=SMALL_WINDOWS, path=None)
    with pytest.raises(DataError, match=r"`data\.path` is not set"):
        prepare(cfg, RunPaths(tmp_path))


# --------------------------------------------------- bad input leaves earlier outputs intact


def _frame_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def _non_numeric() -> str:
    frame = daily_frame(60).astype({"value": object})
    frame.loc[10, "value"] = "12,5"  # quoted decimal comma
    return _frame_csv(frame)


def _bad_dates() -> str:
    frame = daily_frame(60)
    frame.loc[3, "date"] = "31/02/2023"
    return _frame_csv(frame)


def _duplicate_dates() -> str:
    frame = daily_frame(60)
    frame.loc[8, "date"] = frame.loc[7, "date"]
    return _frame_csv(frame)


def _ragged() -> str:
    lines = _frame_csv(daily_frame(60)).splitlines()
    lines[20] += ",1"  # one field too many on line 21
    return "\n".join(lines) + "\n"


BAD_INPUTS = {
    "missing-column": (
        _frame_csv(daily_frame(60).rename(columns={"value": "sales"})),
        {},
        ["no column(s) ['value']", "'sales'", "data.target_columns"],
    ),
    "non-numeric": (_non_numeric(), {}, ["`value`", "not numeric", "row 12 ", "'12,5'"]),
    "too-short": (
        _frame_csv(daily_frame(20)),
        {},
        ["20 usable rows", "at least 44 rows", "task.lookback"],
    ),
    "ragged-row": (_ragged(), {}, ["not a well-formed CSV", "line 21", "delimiter"]),
    "missing-file": (None, {}, ["does not exist", "data.path"]),
    "empty-file": ("", {}, ["is empty", "header row"]),
    "header-only": ("date,value,promo\n", {}, ["no data rows"]),
    "not-utf8": (
        "date,value,promo\n2023-01-01,1.0,0\n2023-01-02,caf\xe9,0\n".encode("latin-1"),
        {},
        ["not UTF-8", "re-save it as UTF-8"],
    ),
    "bad-dates": (_bad_dates(), {}, ["`date`", "not a date", "ISO dates"]),
    "duplicate-dates": (_duplicate_dates(), {}, ["repeated timestamp", "`date`", "rows 9, 10"]),
    "gaps-with-missing-error": (
        _frame_csv(gappy_frame()),
        {"missing": "error"},
        ["3 missing values", "data.missing"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_and_leaves_earlier_outputs_untouched(tmp_path, csv_cfg, case):
    content, data_overrides, expected = BAD_INPUTS[case]
    paths = RunPaths(tmp_path)
    prepare(csv_cfg(daily_frame(90), overrides=SMALL_WINDOWS, filename="good.csv"), paths)
    before = snapshot(tmp_path)
    assert set(before) == {
        "raw",
        "raw/csv.csv",
        "prepared",
        "prepared/series.csv",
        "prepared/series.npy",
        "prepared/meta.json",
    }

    bad_cfg = csv_cfg(content, overrides=SMALL_WINDOWS, filename="bad.csv", **data_overrides)
    with pytest.raises(DataError) as info:
        prepare(bad_cfg, paths)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message
    if case not in {"too-short", "gaps-with-missing-error"}:  # these are about the series
        assert "bad.csv" in message, message

    assert snapshot(tmp_path) == before  # byte-identical, and no staging directories left


def test_malformed_csv_message_is_one_line(tmp_path, csv_cfg):
    cfg = csv_cfg(_ragged(), overrides=SMALL_WINDOWS)
    with pytest.raises(DataError) as info:
        prepare(cfg, RunPaths(tmp_path))
    assert "\n" not in str(info.value), repr(str(info.value))


def test_relative_user_path_falls_back_to_the_repository(tmp_path, compose_cfg, monkeypatch):
    # The Hydra app runs in its own output directory; `data.path` is relative to the repo.
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    cfg = compose_cfg(
        ["data=csv", "data.path=data/external/example.csv", "task.lookback=28", "task.horizon=7"]
    )
    summary = prepare(cfg, RunPaths(tmp_path / "hydra-job"))
    assert summary["rows"] == 730
