"""Task data: shipped data sets load deterministically; directory loaders read fixtures in the exact formats."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.tolaria import TASKS, DataError, get_task
from esper.tolaria.data import (
    BYTE_VOCAB,
    CHARLM_ALPHABET,
    END_OF_STORY,
    encode_stories,
    load_charlm,
    load_cifar10,
    load_digits,
    load_tinystories,
)


def test_digits_split_is_deterministic_and_disjoint() -> None:
    a, b = load_digits(), load_digits()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert (len(a.train_x), len(a.val_x)) == (1438, 359)
    assert a.train_x.shape[1:] == (1, 8, 8) and set(a.train_y.tolist()) == set(range(10))
    assert float(a.train_x.min()) >= -1.0 and float(a.train_x.max()) <= 1.0


def write_cifar_fixture(root: Path, per_batch: int = 7) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"batch_label": name.encode(),
        }
        with (root / name).open("wb") as f:
            pickle.dump(batch, f)


def test_cifar10_reads_the_python_batch_format(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path / "cifar-10-batches-py")
    data = load_cifar10(tmp_path)
    assert data.train_x.shape == (35, 3, 32, 32) and data.val_x.shape == (7, 3, 32, 32)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    first = data.train_x[0] * torch.tensor((0.2470, 0.2435, 0.2616)).view(3, 1, 1)
    first = first + torch.tensor((0.4914, 0.4822, 0.4465)).view(3, 1, 1)
    assert torch.allclose(first.flatten() * 255.0, torch.tensor(raw, dtype=torch.float32), atol=1e-3)


def test_cifar10_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    write_cifar_fixture(tmp_path / "c")
    (tmp_path / "c" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch is missing"):
        load_cifar10(tmp_path / "c")


def test_charlm_corpus_is_deterministic_and_in_alphabet() -> None:
    a, b = load_charlm(32), load_charlm(32)
    assert torch.equal(a.train_x, b.train_x)
    assert int(a.train_x.max()) < len(CHARLM_ALPHABET)
    assert torch.equal(a.train_x[:, 1:], a.train_y[:, :-1])  # targets are the next characters


def test_tinystories_reads_text_files_as_bytes(tmp_path: Path) -> None:
    stories = "Once upon a time, a seed grew.<|endoftext|>The host was happy. ✓<|endoftext|>" * 40
    (tmp_path / "TinyStories-train.txt").write_text(stories, encoding="utf-8")
    (tmp_path / "TinyStories-valid.txt").write_text(stories[:400], encoding="utf-8")
    data = load_tinystories(tmp_path, block_size=16)
    assert data.train_x.shape[1] == 16 and int(data.train_x.max()) < BYTE_VOCAB
    tokens = encode_stories("ab<|endoftext|>c")
    assert tokens.tolist() == [97, 98, END_OF_STORY, 99, END_OF_STORY]
    with pytest.raises(DataError, match="TinyStories-valid.txt is missing"):
        (tmp_path / "TinyStories-valid.txt").unlink()
        load_tinystories(tmp_path, block_size=16)


def test_every_task_builds_its_host_and_declares_valid_slots() -> None:
    for task in TASKS.values():
        host = task.build_host()
        slots = {spec.slot_id for spec in host.injection_specs()}
        assert set(task.config.default_slots) <= slots, task.name
    with pytest.raises(ValueError, match="unknown task 'mnist'; tasks: digits"):
        get_task("mnist")
    with pytest.raises(DataError, match="pass --data-dir"):
        get_task("cifar10").load(None)


def test_narrow_tasks_are_their_tasks_at_half_width() -> None:
    """tools/headroom.py measures each narrow task against its wide one as the 2x-width host: nothing the host-only
    training depends on may differ (digits_narrow's seed width sizes seeds only)."""
    narrow, wide = get_task("digits_narrow").config, get_task("digits").config
    assert narrow.cnn_host is not None and wide.cnn_host is not None
    assert 2 * narrow.cnn_host.base_channels == wide.cnn_host.base_channels
    assert dataclasses.replace(narrow.cnn_host, base_channels=wide.cnn_host.base_channels) == wide.cnn_host
    assert narrow.seed_width == 4 and wide.seed_width is None
    assert dataclasses.replace(narrow, name="digits", cnn_host=wide.cnn_host, seed_width=None) == wide
    narrow, wide = get_task("charlm_narrow").config, get_task("charlm").config
    assert narrow.transformer_host is not None and wide.transformer_host is not None
    assert 2 * narrow.transformer_host.n_embd == wide.transformer_host.n_embd
    assert dataclasses.replace(narrow, name="charlm", transformer_host=wide.transformer_host) == wide
