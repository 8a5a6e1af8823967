"""Image data for the lab and the benchmarks: Fashion-MNIST, read offline.

Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) is read from the idx files that the Debian package
``dataset-fashion-mnist`` installs in :data:`FASHION_MNIST_DIR` (``{train,t10k}-images-idx3-ubyte``
and ``{train,t10k}-labels-idx1-ubyte``, gzip-compressed or not); ``data_dir`` points elsewhere.
Nothing is ever downloaded, and there is no stand-in: when the files are absent,
:class:`DataNotFoundError` names the package and the option (an experiment that needs the data is
then reported as not run, rather than trained on other data).

Images come back as float32 tensors of shape ``(N, D)`` with grayscale values in [0, 1], labels as
int64 tensors of shape ``(N,)``. Loads are cached in-process: treat the tensors as read-only.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["FASHION_MNIST_DIR", "DataNotFoundError", "ImageData", "load_fashion_mnist",
           "load_splits", "read_idx"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLITS = {"train": "train", "test": "t10k"}

# idx type codes (http://yann.lecun.com/exdb/mnist/): numpy dtype, big-endian
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class ImageData:
    """Grayscale images flattened to ``(N, D)`` in [0, 1], their labels, and where they came from.

    ``name`` is what a report prints; ``image_shape`` is ``(height, width)`` for drawing.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    image_shape: tuple[int, int]
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def downsampled(self, factor: int) -> ImageData:
        """The images shrunk ``factor`` times per side by average pooling (1: unchanged)."""
        if factor == 1:
            return self
        height, width = self.image_shape
        if factor < 1 or height % factor or width % factor:
            raise ValueError(f"cannot downsample {height}x{width} images by {factor}")
        pooled = torch.nn.functional.avg_pool2d(self.images.view(-1, 1, height, width), factor)
        return dataclasses.replace(
            self, name=f"{self.name} ({height // factor}x{width // factor}, average-pooled)",
            images=pooled.flatten(1), image_shape=(height // factor, width // factor))


class DataNotFoundError(FileNotFoundError):
    """The Fashion-MNIST idx files are not where they were looked for."""


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one idx file (gzip-compressed if its name ends in ``.gz``) into a numpy array."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes), file has "
                         f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    where = "the directory does not exist" if not directory.is_dir() else "no such file"
    raise DataNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found in {directory} ({where}). Install the Debian "
        f"package (apt-get install dataset-fashion-mnist, files in {FASHION_MNIST_DIR}) or point "
        "to a directory holding the idx files with --data-dir (data_dir=...)."
    )


def _directory(data_dir: str | Path | None) -> Path:
    return Path(data_dir) if data_dir else FASHION_MNIST_DIR


def load_fashion_mnist(split: str = "train", data_dir: str | Path | None = None) -> ImageData:
    """Fashion-MNIST ``split`` ("train": 60,000 images, "test": 10,000) from its idx files.

    Raises :class:`DataNotFoundError` (a FileNotFoundError) naming the Debian package and the
    ``--data-dir`` option when the directory or a file is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    directory = _directory(data_dir)
    images = _find(directory, f"{SPLITS[split]}-images-idx3-ubyte")
    labels = _find(directory, f"{SPLITS[split]}-labels-idx1-ubyte")
    return _load_fashion_mnist(images.resolve(), labels.resolve())


@functools.lru_cache(maxsize=8)
def _load_fashion_mnist(images_path: Path, labels_path: Path) -> ImageData:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8:
        raise ValueError(f"{images_path} holds {images.dtype} pixels, expected unsigned bytes")
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path} and {labels_path} do not hold N images and N labels "
                         f"(shapes {images.shape} and {labels.shape})")
    pixels = torch.from_numpy(images.reshape(len(images), -1).copy()).float().div_(255.0)
    return ImageData("Fashion-MNIST", pixels, torch.from_numpy(labels.astype(np.int64)),
                     (int(images.shape[1]), int(images.shape[2])), str(images_path.parent))


def load_splits(data_dir: str | Path | None = None, downsample: int = 1
                ) -> tuple[ImageData, ImageData]:
    """Fashion-MNIST's training and test splits, shrunk by ``downsample`` per side; raises
    :class:`DataNotFoundError` when the files are missing."""
    return _splits(str(data_dir or ""), FASHION_MNIST_DIR, downsample)


@functools.lru_cache(maxsize=4)
def _splits(data_dir: str, default_dir: Path, downsample: int) -> tuple[ImageData, ImageData]:
    """Cached by the default directory too, so that a changed default is looked up again."""
    return (load_fashion_mnist("train", data_dir or None).downsampled(downsample),
            load_fashion_mnist("test", data_dir or None).downsampled(downsample))
