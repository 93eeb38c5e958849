"""The three training-pair sources (memory, disk, per batch), image offsets in pairs.parquet, flips and the
resumable encoder, on a tiny real-format SD1.5 pipeline and a Pick-a-Pic shard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from inpo_bench.data import encode as encode_module
from inpo_bench.data.encode import EncodedStore, encode_to_disk
from inpo_bench.data.offsets import ImageFile, build_offsets, offsets_path
from inpo_bench.data.pairs import EncodedPairs, LazyPairs, PairImages, load_pair_data, prepare_image
from inpo_bench.data.pickapic import prepare_pairs
from inpo_bench.errors import DataError
from inpo_bench.models.bundle import load_model, write_base_spec
from inpo_bench.smoke import pipelines


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    shard = pipelines.build_pickapic_shard(root / "train.parquet")
    prepare_pairs([shard], root / "pairs.parquet", source="pickapic_v2", batch_rows=5)
    write_base_spec(root / "base", "sd", 32, str(pipelines.build_sd15(root / "sd15")))
    return root


@pytest.fixture(scope="module")
def model(prepared):
    return load_model(prepared / "base")


def test_offsets_point_at_each_image_verbatim(prepared):
    pairs = prepared / "pairs.parquet"
    table = pq.read_table(pairs)
    offsets = np.load(offsets_path(pairs))
    raw = pairs.read_bytes()
    assert offsets.shape == (22, 4) and pq.ParquetFile(pairs).metadata.num_row_groups == 5
    for side, column in enumerate(("image_w", "image_l")):
        for (start, length), expected in zip(offsets[:, 2 * side : 2 * side + 2], table[column].to_pylist()):
            assert raw[start : start + length] == expected
    assert np.array_equal(build_offsets(pairs), offsets)


def test_image_file_reads_exactly_the_pairs_bytes(prepared):
    images = ImageFile(prepared / "pairs.parquet")
    table = pq.read_table(prepared / "pairs.parquet")
    rows = [21, 3, 3, 10]
    got = [images.read(r, 1) for r in rows]
    assert got == [table["image_l"][r].as_py() for r in rows]
    assert images.bytes_read == sum(len(b) for b in got)


def test_a_pairs_file_without_offsets_or_with_compressed_images_is_refused(tmp_path, prepared):
    pq.write_table(pq.read_table(prepared / "pairs.parquet"), tmp_path / "pairs.parquet")  # snappy, dictionary
    with pytest.raises(DataError, match=r"offsets\.npy is missing: rerun the prepare_pairs rule"):
        ImageFile(tmp_path / "pairs.parquet")
    with pytest.raises(DataError, match="rerun prepare_pairs"):
        build_offsets(tmp_path / "pairs.parquet")


def mirrored(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images[:, :, ::-1])


def test_every_source_gives_the_same_pairs_and_flips_each_image_on_its_own(prepared, model, tmp_path):
    pairs = prepared / "pairs.parquet"
    frame = pd.read_parquet(pairs)
    indices = np.array([21, 0, 5, 13, 0])  # across row groups, out of order, repeated
    flips = torch.tensor([[False, True], [True, True], [False, False], [True, False], [False, True]])
    # an independent encoding: decode each image, mirror it with numpy where its flip is set, run the VAE
    expected = {}
    for side, column in ((0, "image_w"), (1, "image_l")):
        images = np.stack([prepare_image(frame[column][i], 32, "test", exact=False) for i in indices])
        images = np.where(flips[:, side].numpy()[:, None, None, None], mirrored(images), images)
        expected[side] = model.images_to_x0(images)
    summary = encode_to_disk(pairs, model, tmp_path / "encoded", batch_size=3, chunk=8, flip=True)
    assert summary["chunks"] == 3 and summary["flips"] == 2
    sources = {
        "memory": load_pair_data(pairs, model, flip=True),
        "per_batch": LazyPairs(pairs, model, flip=True, workers=0),
        "disk": EncodedPairs(tmp_path / "encoded", flip=True),
    }
    for name, source in sources.items():
        x0_w, x0_l, context = source.encode(source.fetch(indices), flips)
        tolerance = 2e-3 * max(1.0, float(expected[0].abs().max())) if name == "disk" else 1e-5  # float16 on disk
        assert torch.allclose(x0_w, expected[0], atol=tolerance), name
        assert torch.allclose(x0_l, expected[1], atol=tolerance), name
        assert context.shape[0] == len(indices), name
    unflipped = sources["memory"].encode(sources["memory"].fetch(indices), torch.zeros_like(flips))[0]
    assert not torch.allclose(unflipped[1], expected[0][1])  # the flip changes the latent
    no_flip = load_pair_data(pairs, model, flip=False)  # flip off: the same flips are ignored
    assert torch.allclose(no_flip.encode(no_flip.fetch(indices), flips)[0], unflipped, atol=1e-6)


def test_sources_without_losers_never_touch_them(prepared, model):
    pairs = prepared / "pairs.parquet"
    lazy = LazyPairs(pairs, model, losers=False)
    fetched = lazy.fetch(np.array([1, 2]))
    assert "l" not in fetched and lazy.rows.images.bytes_read == sum(
        int(n) for n in np.load(offsets_path(pairs))[[1, 2], 1]
    )
    assert lazy.encode(fetched, torch.zeros(2, 2, dtype=torch.bool))[1] is None
    assert load_pair_data(pairs, model, losers=False).x0_l is None


def test_encoding_resumes_from_finished_chunks(prepared, model, tmp_path, monkeypatch):
    pairs = prepared / "pairs.parquet"
    complete = encode_to_disk(pairs, model, tmp_path / "whole", batch_size=4, chunk=8)
    saved = []
    original = encode_module._save

    def crash_after_first_chunk(path, array):
        if path.name.startswith("x0-"):
            if saved:
                raise KeyboardInterrupt  # as a kill would, between two chunks
            saved.append(path.name)
        original(path, array)

    monkeypatch.setattr(encode_module, "_save", crash_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        encode_to_disk(pairs, model, tmp_path / "resumed", batch_size=4, chunk=8)
    monkeypatch.setattr(encode_module, "_save", original)
    with pytest.raises(DataError, match="rerun the encode_pairs rule"):
        EncodedStore(tmp_path / "resumed")  # a half-finished folder is never read as complete
    encoded_batches = []
    original_encode = encode_module.encode_images
    monkeypatch.setattr(
        encode_module,
        "encode_images",
        lambda m, images, f: encoded_batches.append(len(images)) or original_encode(m, images, f),
    )
    resumed = encode_to_disk(pairs, model, tmp_path / "resumed", batch_size=4, chunk=8)
    assert resumed["chunks_resumed"] == 1 and sum(encoded_batches) == 2 * (22 - 8)  # winners and losers, not chunk 0
    assert complete["chunks_resumed"] == 0
    for name in ["context.npy", "caption_index.npy", *(f"x0-{s:09d}.npy" for s in (0, 8, 16))]:
        assert np.array_equal(np.load(tmp_path / "whole" / name), np.load(tmp_path / "resumed" / name)), name
    # other settings (here: flips) clear the old chunks instead of mixing them in
    again = encode_to_disk(pairs, model, tmp_path / "resumed", batch_size=4, chunk=8, flip=False)
    assert again["chunks_resumed"] == 0 and again["flips"] == 1


def test_pair_images_decode_in_dataloader_workers(prepared):
    from torch.utils.data import DataLoader

    images = PairImages(prepared / "pairs.parquet", 32, exact=False)
    batches = [np.array([0, 1]), np.array([20, 21])]
    loader = DataLoader(batches, batch_size=None, num_workers=2, collate_fn=images)
    through_workers = list(loader)
    for got, rows in zip(through_workers, batches):
        direct = images(rows)
        assert np.array_equal(got["w"], direct["w"]) and got["captions"] == direct["captions"]
