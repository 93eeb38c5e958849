"""Preference data: the simulated annotator and the Pick-a-Pic preparation (ties, corrupt pairs, streaming)."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from inpo_bench.data.pickapic import DataError, decodes, prepare_pairs
from inpo_bench.toyworld.oracle import OracleScore
from inpo_bench.toyworld.preferences import (
    PICKAPIC_SCHEMA,
    TOY_SCHEMA,
    annotate,
    bradley_terry_label,
    pickapic_rows,
)


def jpeg(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def pickapic_frame(labels, corrupt_rows=()) -> pd.DataFrame:
    rows = []
    for i, label in enumerate(labels):
        b0, b1 = jpeg((10 * i, 0, 0)), jpeg((0, 10 * i, 0))
        if i in corrupt_rows:
            b1 = b1[: len(b1) // 2]  # truncated JPEG
        rows.append(
            {
                "are_different": True,
                "best_image_uid": "",
                "caption": f"caption {i}",
                "created_at": pd.Timestamp("2023-05-01"),
                "has_label": True,
                "image_0_uid": f"u{i}a",
                "image_0_url": "",
                "image_1_uid": f"u{i}b",
                "image_1_url": "",
                "jpg_0": b0,
                "jpg_1": b1,
                "label_0": label,
                "label_1": 1 - label,
                "model_0": "sdxl",
                "model_1": "sd15",
                "ranking_id": i,
                "user_id": 7,
                "num_example_per_prompt": 1,
            }
        )
    return pd.DataFrame(rows, columns=PICKAPIC_SCHEMA.names)


def write_shard(path, frame, schema=PICKAPIC_SCHEMA, row_group_size=2):
    pq.write_table(
        pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path, row_group_size=row_group_size
    )
    return path


def test_prepare_removes_ties_and_drops_corrupt_pairs_whole(tmp_path):
    labels = [1.0, 0.0, 0.5, 1.0, 0.0, 0.5, 1.0]
    shard = write_shard(tmp_path / "train-00000.parquet", pickapic_frame(labels, corrupt_rows={3}))
    counts = prepare_pairs([shard], tmp_path / "pairs.parquet", source="pickapic_v2", batch_rows=3)
    assert counts["read"] == 7 and counts["ties_removed"] == 2 and counts["corrupt_dropped"] == 1
    assert counts["kept"] == 4 and counts["corrupt_pair_ids"] == ["train-00000-3"]
    pairs = pd.read_parquet(tmp_path / "pairs.parquet")
    assert list(pairs.columns) == ["pair_id", "caption", "image_w", "image_l", "source"]
    assert pairs.pair_id.tolist() == ["train-00000-0", "train-00000-1", "train-00000-4", "train-00000-6"]
    original = pickapic_frame(labels)
    for row in pairs.itertuples():
        i = int(row.pair_id.rsplit("-", 1)[1])
        winner, loser = ("jpg_0", "jpg_1") if labels[i] == 1.0 else ("jpg_1", "jpg_0")
        assert row.image_w == original.loc[i, winner] and row.image_l == original.loc[i, loser]
        assert row.caption == f"caption {i}" and row.source == "pickapic_v2"


def test_prepare_carries_true_rewards_of_toy_shards(tmp_path):
    frame = pickapic_frame([1.0, 0.0]).assign(true_reward_0=[0.9, 0.2], true_reward_1=[0.1, 0.8])
    shard = write_shard(tmp_path / "toy.parquet", frame, schema=TOY_SCHEMA)
    prepare_pairs([shard], tmp_path / "pairs.parquet", source="toy")
    pairs = pd.read_parquet(tmp_path / "pairs.parquet")
    assert pairs.reward_w.tolist() == [0.9, 0.8] and pairs.reward_l.tolist() == [0.1, 0.2]


def test_bad_shards_fail_before_any_output(tmp_path):
    out = tmp_path / "pairs.parquet"
    with pytest.raises(DataError, match="shard not found"):
        prepare_pairs([tmp_path / "missing.parquet"], out, source="x")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet"):
        prepare_pairs([garbage], out, source="x")
    no_labels = write_shard(
        tmp_path / "nolabel.parquet",
        pickapic_frame([1.0]).drop(columns=["label_0"]),
        schema=PICKAPIC_SCHEMA.remove(PICKAPIC_SCHEMA.get_field_index("label_0")),
    )
    with pytest.raises(DataError, match="label_0"):
        prepare_pairs([no_labels], out, source="x")
    only_ties = write_shard(tmp_path / "ties.parquet", pickapic_frame([0.5, 0.5]))
    with pytest.raises(DataError, match="no usable pairs"):
        prepare_pairs([only_ties], out, source="x")
    assert not out.exists()


def test_decodes():
    good = jpeg((1, 2, 3))
    assert decodes(good) and not decodes(good[:40]) and not decodes(b"") and not decodes(None)


def test_bradley_terry_label_frequencies():
    rng = np.random.default_rng(0)
    n = 20000
    # gap 0.05 at T=0.05 -> P(0 wins | no tie) = sigmoid(1) = 0.731; P(tie) = 0.3 * exp(-0.05/0.03) = 0.0567
    labels = np.array([bradley_terry_label(0.55, 0.5, rng, 0.05, 0.3, 0.03) for _ in range(n)])
    tie = np.mean(labels == 0.5)
    assert tie == pytest.approx(0.3 * np.exp(-0.05 / 0.03), abs=0.01)
    wins = np.mean(labels[labels != 0.5] == 1.0)
    assert wins == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.015)
    # equal images: ties at the full rate, the rest a coin flip
    equal = np.array([bradley_terry_label(0.5, 0.5, rng, 0.05, 0.3, 0.03) for _ in range(n)])
    assert np.mean(equal == 0.5) == pytest.approx(0.3, abs=0.015)
    assert np.mean(equal[equal != 0.5] == 1.0) == pytest.approx(0.5, abs=0.015)


def oracle_score(reward: float, **terms: float) -> OracleScore:
    """An oracle reading with the given reward and terms (the others 0), as the annotator receives them."""
    values = dict.fromkeys(("fg_colour", "bg_colour", "shape", "clean", "sharp", "centred", "fidelity"), 0.0)
    flags = dict.fromkeys(("fg_correct", "bg_correct", "shape_correct"), True)
    return OracleScore(**{**values, **terms, "aesthetic": 0.0, "reward": reward, **flags})


def test_annotator_personas_and_flips():
    """Each pair is judged by one persona drawn by its share, on the terms it weighs; decided labels flip at
    flip_rate; ties are never flipped. Frequencies against the closed form."""
    rng = np.random.default_rng(1)
    n = 20000
    # image 0 has the better colour, image 1 the better shape; the oracle's reward calls them equal
    s0, s1 = oracle_score(0.5, fg_colour=1.0), oracle_score(0.5, shape=1.0)
    cfg = {"bt_temperature": 0.1, "tie_rate": 0.0, "tie_scale": 0.1}
    colour = {"share": 3.0, "terms": {"fg_colour": 1.0, "shape": 1.0, "bg_colour": 2.0}}  # fg .25 vs shape .25
    shape = {"share": 1.0, "terms": {"shape": 1.0}}  # judges by shape alone: 0 vs 1
    labels = np.array([annotate(s0, s1, rng, {**cfg, "personas": [colour, shape]}) for _ in range(n)])
    p_shape_persona_picks_0 = 1 / (1 + np.exp(1 / 0.1))
    expected = 0.75 * 0.5 + 0.25 * p_shape_persona_picks_0
    assert np.mean(labels == 1.0) == pytest.approx(expected, abs=0.012)
    flipped = np.array([annotate(s0, s1, rng, {**cfg, "personas": [shape], "flip_rate": 0.25}) for _ in range(n)])
    p = p_shape_persona_picks_0
    assert np.mean(flipped == 1.0) == pytest.approx(0.75 * p + 0.25 * (1 - p), abs=0.012)
    ties = [annotate(s0, s0, rng, {**cfg, "tie_rate": 1.0, "flip_rate": 0.5}) for _ in range(200)]
    assert set(ties) == {0.5}
    # no personas, no flips: the labels of the plain Bradley-Terry annotator, draw for draw
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    plain = [bradley_terry_label(0.55, 0.5, a, 0.05, 0.3, 0.03) for _ in range(100)]
    assert [annotate(oracle_score(0.55), oracle_score(0.5), b, {**cfg, "bt_temperature": 0.05, "tie_rate": 0.3,
            "tie_scale": 0.03}) for _ in range(100)] == plain  # fmt: skip


def test_toy_rows_follow_the_pickapic_schema(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    good, bad = oracle_score(0.9), oracle_score(0.1)
    rows = pickapic_rows(
        [("a red circle on a blue background", image, image + 1, good, bad)] * 3,
        {"bt_temperature": 0.05, "tie_rate": 0.0, "tie_scale": 0.03},
        seed=0,
        model_name="toy",
    )
    table = pa.Table.from_pandas(rows, schema=TOY_SCHEMA, preserve_index=False)
    assert table.schema.names[: len(PICKAPIC_SCHEMA)] == PICKAPIC_SCHEMA.names
    assert rows.num_example_per_prompt.tolist() == [3, 3, 3]
    assert set(rows.label_0) <= {0.0, 1.0} and (rows.label_0 + rows.label_1 == 1).all()


def test_prepare_streams_a_lazy_sequence_of_shards(tmp_path):
    """Hub downloads arrive one by one: nothing is listed up front, and each shard is checked on arrival."""
    opened = []

    def shards():
        for i, labels in enumerate(([1.0, 0.5], [0.0, 1.0])):
            opened.append(i)
            yield write_shard(tmp_path / f"train-{i:05d}.parquet", pickapic_frame(labels))

    counts = prepare_pairs(shards(), tmp_path / "pairs.parquet", source="pickapic_v2", check=False)
    assert opened == [0, 1] and counts["read"] == 4 and counts["kept"] == 3 and len(counts["shards"]) == 2
    assert pd.read_parquet(tmp_path / "pairs.parquet").pair_id.tolist() == [
        "train-00000-0",
        "train-00001-0",
        "train-00001-1",
    ]

    def broken():
        yield write_shard(tmp_path / "good.parquet", pickapic_frame([1.0]))
        (tmp_path / "bad.parquet").write_bytes(b"junk")
        yield tmp_path / "bad.parquet"

    with pytest.raises(DataError, match=r"bad\.parquet: not a readable parquet"):
        prepare_pairs(broken(), tmp_path / "pairs2.parquet", source="pickapic_v2", check=False)
    assert not (tmp_path / "pairs2.parquet").exists()


def test_prepare_reports_how_often_the_toy_annotator_is_right(tmp_path):
    frame = pickapic_frame([1.0, 0.0, 1.0, 0.5, 1.0]).assign(
        true_reward_0=[0.9, 0.9, 0.2, 0.5, 0.4], true_reward_1=[0.1, 0.3, 0.7, 0.5, 0.4]
    )
    shard = write_shard(tmp_path / "toy.parquet", frame, schema=TOY_SCHEMA)
    counts = prepare_pairs([shard], tmp_path / "pairs.parquet", source="toy")
    # kept: right (0.9 > 0.1), wrong (winner 0.3 < 0.9), wrong (0.2 < 0.7), equal rewards (0.4 = 0.4); the tie left
    assert (counts["labels_right"], counts["labels_wrong"], counts["labels_equal_reward"]) == (1, 2, 1)
    assert counts["labels_right_share"] == pytest.approx(1 / 3)
