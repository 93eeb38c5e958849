"""Byte offsets of every image inside pairs.parquet, so a training job can read one pair's images and nothing else.

A parquet reader reads whole column chunks: with Pick-a-Pic's ~170 kB images, one random pair from a 256-row row
group costs ~87 MB of reads. pairs.parquet is therefore written with its image columns uncompressed, PLAIN-encoded,
without dictionary, statistics or nulls, one row per data page (`IMAGE_WRITE_OPTIONS`): each image's bytes then sit
verbatim in the file. `build_offsets` walks the page headers of those columns (a few dozen bytes per image, the
image bytes themselves are not read) and records (offset, length) per image; `ImageFile` reads an image with one
`pread` of exactly its bytes.

The page headers are Thrift compact-protocol structs (parquet-format's `PageHeader`); `_Thrift` reads just enough of
that protocol to find their sizes and the fields used here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..errors import DataError

IMAGE_COLUMNS = ("image_w", "image_l")
DATA_PAGE, DICTIONARY_PAGE = 0, 2
PLAIN = 0


def image_write_options(columns: list[str]) -> dict:
    """ParquetWriter options that store the image columns verbatim and everything else compactly."""
    others = [c for c in columns if c not in IMAGE_COLUMNS]
    return {
        "compression": {c: ("none" if c in IMAGE_COLUMNS else "snappy") for c in columns},
        "use_dictionary": others,
        "column_encoding": dict.fromkeys(IMAGE_COLUMNS, "PLAIN"),
        "write_statistics": others,
        "data_page_version": "1.0",
        "max_rows_per_page": 1,
    }


def offsets_path(pairs: str | Path) -> Path:
    return Path(pairs).with_suffix(".offsets.npy")


class _Thrift:
    """A cursor over Thrift compact-protocol bytes that parses structs into {field id: value}."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise EOFError
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> object:
        if kind in (1, 2):  # booleans carry their value in the type nibble
            return kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return None
        if kind == 8:
            size = self.varint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if kind in (9, 10):
            header = self.byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            return [self.byte() == 1 if element in (1, 2) else self.value(element) for _ in range(size)]
        if kind == 11:
            size = self.varint()
            types = self.byte() if size else 0
            return [(self.value(types >> 4), self.value(types & 0x0F)) for _ in range(size)]
        if kind == 12:
            return self.struct()
        raise DataError(f"unknown Thrift compact type {kind}")

    def struct(self) -> dict[int, object]:
        fields: dict[int, object] = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind)
            if self.pos > len(self.data):
                raise EOFError


def _page_header(fd: int, offset: int) -> tuple[dict[int, object], int]:
    """The PageHeader at `offset` and its length in bytes."""
    size = 256
    while True:
        data = os.pread(fd, size, offset)
        try:
            cursor = _Thrift(data)
            return cursor.struct(), cursor.pos
        except EOFError:
            if len(data) < size:
                raise DataError(f"truncated parquet page header at byte {offset}") from None
            size *= 4


def build_offsets(pairs: str | Path) -> np.ndarray:
    """(rows, 4) int64: offset and length of image_w, offset and length of image_l, for every row in file order."""
    pairs = Path(pairs)
    meta = pq.ParquetFile(pairs).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    missing = [c for c in IMAGE_COLUMNS if c not in names]
    if missing:
        raise DataError(f"{pairs}: no column(s) {missing}")
    out = np.empty((meta.num_rows, 4), dtype=np.int64)
    fd = os.open(pairs, os.O_RDONLY)
    try:
        row = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for side, name in enumerate(IMAGE_COLUMNS):
                chunk = group.column(names.index(name))
                if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
                    raise DataError(
                        f"{pairs}: column {name} is {chunk.compression.lower()} / dictionary-encoded; rerun "
                        "prepare_pairs, which writes images verbatim"
                    )
                position, done = chunk.data_page_offset, 0
                while done < group.num_rows:
                    header, length = _page_header(fd, position)
                    data_start, size = position + length, int(header[3])
                    if header[1] != DATA_PAGE or not isinstance(header.get(5), dict) or header[5][2] != PLAIN:
                        raise DataError(f"{pairs}: column {name} has a page that is not a PLAIN v1 data page")
                    values = int(header[5][1])
                    page = os.pread(fd, size, data_start) if values > 1 else os.pread(fd, 4, data_start)
                    cursor = 0
                    for _ in range(values):
                        value_length = int.from_bytes(page[cursor : cursor + 4], "little")
                        out[row + done, 2 * side] = data_start + cursor + 4
                        out[row + done, 2 * side + 1] = value_length
                        cursor += 4 + value_length
                        done += 1
                    if values == 1 and 4 + out[row + done - 1, 2 * side + 1] != size:
                        raise DataError(f"{pairs}: column {name} has levels or padding inside its pages")
                    position = data_start + size
            row += group.num_rows
    finally:
        os.close(fd)
    return out


def write_offsets(pairs: str | Path) -> Path:
    path = offsets_path(pairs)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, build_offsets(pairs))
    tmp.replace(path)
    return path


class ImageFile:
    """Reads images of pairs.parquet by offset; opens its file descriptor lazily, once per process (so that
    DataLoader workers each get their own), and counts the bytes it reads."""

    def __init__(self, pairs: str | Path) -> None:
        self.path = Path(pairs)
        index = offsets_path(self.path)
        if not index.is_file():
            raise DataError(f"{index} is missing: rerun the prepare_pairs rule, which writes it next to {self.path}")
        self.offsets = np.load(index)
        self.bytes_read = 0
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, row: int, side: int) -> bytes:
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        offset, length = self.offsets[row, 2 * side : 2 * side + 2]
        data = os.pread(self._fd, int(length), int(offset))
        self.bytes_read += len(data)
        return data

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}
