"""Data for the tasks. Everything is loaded into memory as tensors; nothing is downloaded.

- digits: the 8x8 handwritten digits that ship inside scikit-learn.
- cifar10: the standard CIFAR-10 "python version" batch files (data_batch_1..5, test_batch) from a directory.
- charlm: characters of text that ships with Python itself (stdlib docstrings, in a fixed order).
- tinystories: TinyStories text files from a directory, tokenised as UTF-8 bytes (no tokenizer download).
"""

from __future__ import annotations

import importlib
import inspect
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPLIT_SEED = 0  # train/validation splits never depend on the run's seed


class DataError(ValueError):
    """Missing or malformed task data; the message names the path and what was expected."""


@dataclass(frozen=True, slots=True)
class TensorData:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor

    def to(self, device: torch.device) -> TensorData:
        return TensorData(*(t.to(device) for t in (self.train_x, self.train_y, self.val_x, self.val_y)))


def _split(x: torch.Tensor, y: torch.Tensor, val_fraction: float) -> TensorData:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return TensorData(x[train], y[train], x[val], y[val])


# ---------------------------------------------------------------- images
def load_digits() -> TensorData:
    from sklearn.datasets import load_digits as sklearn_digits  # untyped: pyproject.toml's mypy override

    digits = sklearn_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.5) / 0.5
    y = torch.tensor(digits.target, dtype=torch.int64)
    return _split(x, y, val_fraction=0.2)


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"


def _cifar_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"cifar10: {path} is missing (expected the CIFAR-10 python batch files)")
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"cifar10: {path} is not a CIFAR-10 batch (needs b'data' and b'labels')")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"cifar10: {path}: data must be [N, 3072] uint8, got {data.shape}")
    return data, np.asarray(batch[b"labels"], dtype=np.int64)


def load_cifar10(data_dir: Path) -> TensorData:
    """Reads `data_dir` (or `data_dir/cifar-10-batches-py`): five training batches and the test batch."""
    if not data_dir.is_dir():
        raise DataError(f"cifar10: data directory {data_dir} does not exist (pass --data-dir with the batch files)")
    root = data_dir / "cifar-10-batches-py" if (data_dir / "cifar-10-batches-py").is_dir() else data_dir
    parts = [_cifar_file(root / name) for name in CIFAR_TRAIN_FILES]
    test_x, test_y = _cifar_file(root / CIFAR_TEST_FILE)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def images(raw: np.ndarray) -> torch.Tensor:
        return (torch.tensor(raw, dtype=torch.float32).view(-1, 3, 32, 32) / 255.0 - mean) / std

    train_x = images(np.concatenate([p[0] for p in parts]))
    train_y = torch.tensor(np.concatenate([p[1] for p in parts]))
    return TensorData(train_x, train_y, images(test_x), torch.tensor(test_y))


# ---------------------------------------------------------------- text
CHARLM_MODULES = (
    "os",
    "json",
    "re",
    "collections",
    "itertools",
    "functools",
    "argparse",
    "pathlib",
    "dataclasses",
    "subprocess",
    "logging",
    "unittest",
    "string",
    "textwrap",
    "datetime",
    "random",
    "statistics",
    "enum",
    "inspect",
    "pickle",
    "csv",
    "heapq",
    "bisect",
    "contextlib",
    "abc",
    "decimal",
    "fractions",
    "shutil",
)
CHARLM_ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # printable ASCII; anything else becomes '?'


def charlm_corpus() -> str:
    """Docstrings of a fixed list of stdlib modules and of their public functions and classes, in sorted order."""
    texts: list[str] = []
    for name in CHARLM_MODULES:
        module = importlib.import_module(name)
        texts.append(inspect.getdoc(module) or "")
        for member_name, member in sorted(vars(module).items()):
            if member_name.startswith("_") or not (inspect.isfunction(member) or inspect.isclass(member)):
                continue
            doc = inspect.getdoc(member)
            if doc:
                texts.append(doc)
    return "\n\n".join(texts)


def encode_chars(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(CHARLM_ALPHABET)}
    unknown = index["?"]
    return torch.tensor([index[c] if c in index else unknown for c in text], dtype=torch.int64)


def _sequences(tokens: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = (len(tokens) - 1) // block_size
    if n < 2:
        raise DataError(f"text too short: {len(tokens)} tokens for block size {block_size}")
    chunks = tokens[: n * block_size + 1]
    x = chunks[:-1].view(n, block_size)
    y = chunks[1:].view(n, block_size)
    return x, y


def load_charlm(block_size: int) -> TensorData:
    x, y = _sequences(encode_chars(charlm_corpus()), block_size)
    return _split(x, y, val_fraction=0.1)


BYTE_VOCAB = 257  # 256 byte values + end-of-story
END_OF_STORY = 256
STORY_SEPARATOR = "<|endoftext|>"


def encode_stories(text: str) -> torch.Tensor:
    tokens: list[int] = []
    for story in text.split(STORY_SEPARATOR):
        story = story.strip()
        if story:
            tokens.extend(story.encode("utf-8"))
            tokens.append(END_OF_STORY)
    return torch.tensor(tokens, dtype=torch.int64)


def load_tinystories(data_dir: Path, block_size: int, max_bytes: int = 4_000_000) -> TensorData:
    """Reads TinyStories-train.txt and TinyStories-valid.txt (stories separated by <|endoftext|>); at most
    `max_bytes` of each, so a CPU run stays small."""
    if not data_dir.is_dir():
        raise DataError(f"tinystories: data directory {data_dir} does not exist (pass --data-dir)")
    splits = []
    for name in ("TinyStories-train.txt", "TinyStories-valid.txt"):
        path = data_dir / name
        if not path.is_file():
            raise DataError(f"tinystories: {path} is missing (expected {name})")
        with path.open("r", encoding="utf-8") as f:
            splits.append(_sequences(encode_stories(f.read(max_bytes)), block_size))
    (train_x, train_y), (val_x, val_y) = splits
    return TensorData(train_x, train_y, val_x, val_y)
