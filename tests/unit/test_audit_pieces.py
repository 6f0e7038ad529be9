"""Current decisions, strata, sampling, config and label validation (no Ray, no lake)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.audit.config import AuditConfig, SampleConfig
from pipelines.audit.current import COLUMNS, current_decisions
from pipelines.audit.labels import read_labels_csv
from pipelines.audit.sampling import draw
from pipelines.errors import BadConfigError, BadInputError
from pipelines.lake import Lake

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _decisions(rows: list[tuple[str, str, str, str, float, int, str]]) -> pl.LazyFrame:
    """rows: content, market, policy, action, score, minutes after T0, model version."""
    data = {c: [] for c in COLUMNS}  # type: ignore[var-annotated]
    for cid, market, policy, action, score, minutes, model in rows:
        values = {
            "content_id": cid, "market": market, "policy_id": policy, "policy_version": "p@1", "action": action,
            "score": score, "automated": "FULLY", "run_id": "r", "model_name": "m", "model_version": model,
            "decided_at": T0 + timedelta(minutes=minutes), "created_at": T0, "region": "DE", "language": "de",
            "content_type": "TEXT", "source": "model",
        }  # fmt: skip
        for c in COLUMNS:
            data[c].append(values[c])
    return pl.DataFrame(data).lazy()


def test_current_decision_is_the_latest_row_and_changes_are_flagged() -> None:
    lf = _decisions(
        [
            ("a", "DE", "hate", "none", 0.1, 0, "1"),
            ("a", "DE", "hate", "remove", 0.95, 10, "2"),  # later: current, changed
            ("a", "FR", "hate", "none", 0.95, 0, "1"),  # same unit (a, hate): changed too
            ("b", "DE", "hate", "review", 0.5, 0, "1"),
            ("b", "DE", "hate", "review", 0.55, 5, "2"),  # later, same action: not changed
            ("c", "DE", "hate", "label", 0.7, 0, "1"),
            ("c", "DE", "hate", "remove", 0.99, 60, "2"),  # after `before`: ignored
        ]
    )
    cur = current_decisions(lf, before=T0 + timedelta(minutes=30)).sort("content_id", "market")
    assert cur.select("content_id", "market", "action").rows() == [
        ("a", "DE", "remove"), ("a", "FR", "none"), ("b", "DE", "review"), ("c", "DE", "label"),
    ]  # fmt: skip
    assert cur["changed"].to_list() == [True, True, False, False]
    assert cur["__band"].to_list() == [4, 4, 2, 3]


def test_decision_of_record_stays_current_over_later_model_decisions() -> None:
    lf = _decisions(
        [
            ("a", "DE", "hate", "remove", 0.95, 0, "1"),
            ("a", "DE", "hate", "none", 0.95, 5, "review"),  # a reviewer lifted it
            ("a", "DE", "hate", "remove", 0.97, 10, "2"),  # a later model run: not current
        ]
    ).with_columns(
        pl.when(pl.col("model_version") == "review")
        .then(pl.lit("human_review"))
        .otherwise(pl.lit("model"))
        .alias("source")
    )
    cur = current_decisions(lf, before=T0 + timedelta(minutes=30))
    assert cur.select("action", "source").rows() == [("none", "human_review")]
    from pipelines.current import current_decisions as plain

    assert plain(lf).collect().select("action", "source").rows() == [("none", "human_review")]


def test_a_lifted_hash_match_lets_the_model_decision_stand() -> None:
    lf = _decisions(
        [
            ("a", "DE", "hate", "label", 0.7, 0, "1"),  # the model
            ("a", "DE", "hate", "remove", 0.7, 5, "hash:known@1"),  # a bank match wins over it
            ("b", "DE", "hate", "label", 0.7, 0, "1"),
            ("b", "DE", "hate", "remove", 0.7, 5, "hash:known@1"),
            ("b", "DE", "hate", "none", 0.7, 9, "hash:known@2"),  # ... until its entry is retracted
        ]
    ).with_columns(
        pl.when(pl.col("model_version").str.starts_with("hash:"))
        .then(pl.lit("hash_match"))
        .otherwise(pl.lit("model"))
        .alias("source")
    )
    from pipelines.current import current_decisions as plain

    want = [("a", "remove", "hash_match"), ("b", "label", "model")]
    got = current_decisions(lf, before=T0 + timedelta(minutes=30)).sort("content_id")
    assert got.select("content_id", "action", "source").rows() == want
    assert plain(lf).collect().sort("content_id").select("content_id", "action", "source").rows() == want


def test_draw_is_stratified_deterministic_and_oversamples_high_scores() -> None:
    n = 2000
    units = pl.DataFrame(
        {
            "content_id": [f"c{i}" for i in range(n)],
            "policy_id": "hate",
            "region_group": ["EU" if i % 2 else "OTHER" for i in range(n)],
            "score_band": ["0.0-0.3" if i % 10 else "0.9-1.0" for i in range(n)],
            "changed": [i % 50 == 0 for i in range(n)],
        }
    )
    a = draw(units, per_stratum=10, seed=1)
    b = draw(units.reverse(), per_stratum=10, seed=1)
    assert a.sort("content_id").equals(b.sort("content_id"))
    sizes = a.group_by("stratum").agg(pl.len(), pl.col("stratum_size").first(), pl.col("inclusion_prob").first())
    for stratum, got, size, prob in sizes.iter_rows():
        want = min(size, 20 if ("0.9-1.0" in stratum or "changed" in stratum) else 10)
        assert got == want and prob == pytest.approx(want / size), stratum
    assert draw(units, per_stratum=10, seed=2)["content_id"].to_list() != a["content_id"].to_list()


def test_config_errors_name_the_option(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    with pytest.raises(BadConfigError, match=r"--from .* must be before --to"):
        AuditConfig(lake=lake, start=T0, end=T0)
    with pytest.raises(BadConfigError, match="unknown market or group XX"):
        AuditConfig(lake=lake, markets=("XX",))
    with pytest.raises(BadConfigError, match="--by"):
        AuditConfig(lake=lake, by=("region",))
    with pytest.raises(BadConfigError, match="time zone"):
        AuditConfig(lake=lake, as_of=datetime(2026, 1, 1))
    with pytest.raises(BadConfigError, match="in the future"):
        AuditConfig(lake=lake, as_of=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(BadConfigError, match="--per-stratum"):
        SampleConfig(lake=lake, per_stratum=0)
    assert (
        AuditConfig(lake=lake, start=T0, end=T0 + timedelta(days=1))
        .out_dir()
        .endswith("reports/audit-20260501T000000Z-20260502T000000Z")
    )


def test_labels_csv_errors_carry_line_numbers(tmp_path: Path) -> None:
    samples = pl.DataFrame({"sample_id": ["s1", "s2", "s3"], "content_id": ["a", "b", "c"], "policy_id": ["hate"] * 3})
    path = tmp_path / "l.csv"
    path.write_text("sample_id,label,content_id\ns1,violating,a\nzz,violating,\ns2,perhaps,\ns1,no,a\ns3,1,WRONG\n")
    with pytest.raises(BadInputError) as err:
        read_labels_csv(str(path), samples)
    msg = str(err.value)
    assert "line 3: unknown sample_id 'zz'" in msg
    assert "line 4: unknown label 'perhaps'" in msg
    assert "line 5: sample_id 's1' repeats line 2" in msg
    assert "line 6: content_id 'WRONG' does not match" in msg
    assert "\n" not in msg
    path.write_text("id,label\n")
    with pytest.raises(BadInputError, match="line 1: header lacks column"):
        read_labels_csv(str(path), samples)
    path.write_text("sample_id,label,reviewer\ns1,Violating,ann\ns2,not_violating,\n")
    assert read_labels_csv(str(path), samples) == [
        ("s1", "a", "hate", True, "ann"),
        ("s2", "b", "hate", False, "unknown"),
    ]
