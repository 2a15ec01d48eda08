"""`ur4rec evaluate` through the real entry point: --k syntax, --json, --output recomputation, errors."""

from __future__ import annotations

import json
import math

import pytest

from ur4rec_cli.cli.evaluate import parse_ks
from ur4rec_cli.errors import ConfigError


def test_parse_ks_forms() -> None:
    assert parse_ks("5", ["10", "20"]) == [5, 10, 20]
    assert parse_ks("10", None) == [10]
    assert parse_ks("20,5", ["10"]) == [5, 10, 20]
    assert parse_ks(None, None) is None
    for bad in (("0", None), ("x", None), ("5", ["y"]), ("5", ["-3"])):
        with pytest.raises(ConfigError, match="--k"):
            parse_ks(*bad)
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse_ks(None, ["5"])


def test_bad_k_values_are_one_clear_error(cli) -> None:
    for args, needle in ((["--k", "0"], "positive"), (["--k", "x"], "not an integer"), (["--k", "5", "x"], "not an integer")):
        r = cli("evaluate", *args)
        assert r.code == 2, r
        assert r.stderr.startswith("error: --k") and needle in r.stderr and r.stderr.count("\n") == 1, r


def test_no_dataset_is_one_line(cli) -> None:
    r = cli("evaluate", "--stage", "popularity")
    assert r.code == 4 and r.stderr.startswith("error: no dataset artifact") and r.stderr.count("\n") == 1, r


def test_unknown_stage_and_protocol(cli) -> None:
    r = cli("evaluate", "--stage", "nope")
    assert r.code == 2 and "unknown stage 'nope'" in r.stderr, r
    r = cli("evaluate", "--protocol", "weird")
    assert r.code == 2 and "protocol" in r.stderr, r


@pytest.mark.slow
def test_output_recomputes_printed_metrics(cli, ml100k, tmp_path) -> None:
    from ur4rec_cli.ranking import metrics_from_ranks

    ranks_file = tmp_path / "ranks.jsonl"
    r = cli("evaluate", "--stage", "popularity", "--k", "5", "10", "20", "--json", "--output", str(ranks_file))
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["protocol"] == "full" and res["split"] == "test" and res["users"] == 943
    assert list(res["metrics"]) == ["HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR"]
    lines = [json.loads(line) for line in ranks_file.read_text().splitlines()]
    assert len(lines) == 943 and set(lines[0]) == {"user", "target", "rank", "candidates"}
    assert isinstance(lines[0]["user"], int) and isinstance(lines[0]["target"], int)
    assert all(0 <= row["rank"] < row["candidates"] <= 1682 for row in lines)
    # Recompute by hand from the file: exactly the printed numbers.
    ranks = [row["rank"] for row in lines]
    for k in (5, 10, 20):
        assert sum(r_ < k for r_ in ranks) / 943 == res["metrics"][f"HR@{k}"]
        ndcg = sum(1 / math.log2(r_ + 2) for r_ in ranks if r_ < k) / 943
        assert ndcg == pytest.approx(res["metrics"][f"NDCG@{k}"], abs=1e-12)
    assert metrics_from_ranks(ranks, [5, 10, 20]) == res["metrics"]
    # The table prints the same numbers (4 decimals) beside the protocol line.
    table = cli("evaluate", "--stage", "popularity", "--k", "10")
    assert table.code == 0, table
    assert f"{res['metrics']['HR@10']:.4f}" in table.stdout and f"{res['metrics']['NDCG@10']:.4f}" in table.stdout
    for needle in ("protocol    full", "users       943", "candidates  all items not in the fed history", "pessimistic ties"):
        assert needle in table.stdout, table.stdout


@pytest.mark.slow
def test_sampled_protocol_cli_is_reproducible(cli, ml100k, tmp_path) -> None:
    runs = []
    for _ in range(2):
        r = cli("evaluate", "--stage", "popularity", "--protocol", "sampled", "--negatives", "50", "--k", "10", "--json",
                "--split", "valid", "--output", str(tmp_path / "s.jsonl"))  # fmt: skip
        assert r.code == 0, r
        res = json.loads(r.stdout)
        assert res.pop("seconds") < 2.0
        runs.append((res, (tmp_path / "s.jsonl").read_text()))
    assert runs[0] == runs[1]
    res = runs[0][0]
    assert res["protocol"] == "sampled" and res["split"] == "valid" and res["candidates"]["max"] == 51
    assert all(json.loads(line)["candidates"] == 51 for line in runs[0][1].splitlines())
    # Sampled metrics are much higher than full ranking ones for the same model.
    assert res["metrics"]["HR@10"] > 0.3


@pytest.mark.slow
def test_compare_without_a_trained_model(cli, ml100k) -> None:
    r = cli("evaluate", "--compare", "--stage", "popularity", "--json")
    assert r.code == 0, r
    assert [row["name"] for row in json.loads(r.stdout)["compare"]] == ["popularity"]
    r = cli("evaluate")
    assert r.code == 4 and r.stderr.startswith("error: no trained model") and r.stderr.count("\n") == 1, r
