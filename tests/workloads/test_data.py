"""Data loaders: idx parsing (gzip and plain), shapes and scaling, missing files (no stand-in)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gumbelkit.workloads import data


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_split(directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
                 compressed: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images),
                        (f"{prefix}-labels-idx1-ubyte", labels)):
        raw = _idx_bytes(array)
        if compressed:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)


@pytest.fixture
def images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255  # both ends of the scale
    return images, rng.integers(0, 10, size=7, dtype=np.uint8)


@pytest.mark.parametrize("compressed", [True, False])
def test_reads_idx_files(tmp_path, images_and_labels, compressed):
    images, labels = images_and_labels
    _write_split(tmp_path, "train", images, labels, compressed)
    loaded = data.load_fashion_mnist("train", tmp_path)
    assert loaded.name == "Fashion-MNIST"
    assert loaded.images.shape == (7, 20) and loaded.images.dtype == torch.float32
    assert loaded.labels.shape == (7,) and loaded.labels.dtype == torch.int64
    assert loaded.image_shape == (5, 4) and len(loaded) == 7
    np.testing.assert_allclose(loaded.images.numpy(), images.reshape(7, -1) / 255.0, rtol=1e-6)
    assert loaded.images.min() == 0.0 and loaded.images.max() == 1.0
    np.testing.assert_array_equal(loaded.labels.numpy(), labels)


def test_test_split_and_cache(tmp_path, images_and_labels):
    images, labels = images_and_labels
    _write_split(tmp_path, "t10k", images[:3], labels[:3], compressed=True)
    first = data.load_fashion_mnist("test", tmp_path)
    assert first.images.shape == (3, 20)
    assert data.load_fashion_mnist("test", str(tmp_path)) is first  # cached in-process


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(tmp_path / "junk")
    truncated = _idx_bytes(np.zeros((2, 3), np.uint8))[:-1]
    (tmp_path / "short").write_bytes(truncated)
    with pytest.raises(ValueError, match="header says shape"):
        data.read_idx(tmp_path / "short")


def test_missing_directory_names_package_and_option(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        data.load_fashion_mnist("train", tmp_path / "nowhere")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "does not exist" in message


def test_missing_file_is_an_error(tmp_path, images_and_labels):
    images, labels = images_and_labels
    _write_split(tmp_path, "train", images, labels, compressed=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        data.load_fashion_mnist("train", tmp_path)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("validation")


def test_explicit_directory_is_used(tmp_path, images_and_labels):
    images, labels = images_and_labels
    _write_split(tmp_path, "train", images, labels, compressed=False)
    _write_split(tmp_path, "t10k", images[:2], labels[:2], compressed=False)
    train, test = data.load_splits(tmp_path)
    assert train.name == "Fashion-MNIST" and len(train) == 7 and len(test) == 2


def test_downsampled_averages_blocks(tmp_path, images_and_labels):
    images, labels = images_and_labels
    images = images[:, :4, :4].copy()  # 4x4 images
    _write_split(tmp_path, "train", images, labels, compressed=True)
    loaded = data.load_fashion_mnist("train", tmp_path)
    small = loaded.downsampled(2)
    assert small.images.shape == (7, 4) and small.image_shape == (2, 2)
    expected = images.reshape(7, 2, 2, 2, 2).mean((2, 4)) / 255.0
    np.testing.assert_allclose(small.images.numpy(), expected.reshape(7, 4), rtol=1e-5)
    assert "2x2" in small.name and loaded.downsampled(1) is loaded
    with pytest.raises(ValueError, match="cannot downsample"):
        loaded.downsampled(3)


def test_load_splits_follows_the_default_directory(tmp_path, monkeypatch, images_and_labels):
    images, labels = images_and_labels
    _write_split(tmp_path / "fmnist", "train", images, labels, compressed=True)
    _write_split(tmp_path / "fmnist", "t10k", images[:2], labels[:2], compressed=False)
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "fmnist")
    train, test = data.load_splits()
    assert train.name == "Fashion-MNIST" and len(train) == 7 and len(test) == 2
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(data.DataNotFoundError, match="dataset-fashion-mnist"):
        data.load_splits()  # no stand-in data
