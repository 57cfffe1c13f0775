"""The task registry: host, data, losses that define success, and default run sizes for each task.

Every default is sized so the default heuristic run finishes in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from esper.kasmina import CNNHost, TransformerHost
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.kasmina.contracts.transformer_host_config import TransformerHostConfig
from esper.leyline import SurfaceType, Topology
from esper.tolaria.contracts.task_config import TaskConfig
from esper.tolaria.data import (
    BYTE_VOCAB,
    CHARLM_ALPHABET,
    DataError,
    TensorData,
    load_charlm,
    load_cifar10,
    load_digits,
    load_tinystories,
)

CHARLM_BLOCK = 64
COUNTERFACTUAL_SAMPLES = 384
TINYSTORIES_BLOCK = 128


@dataclass(frozen=True, slots=True)
class TaskSpec:
    config: TaskConfig
    description: str
    needs_data_dir: bool
    loader: Callable[[Path | None], TensorData]
    max_validation: int  # validation samples (a fixed prefix of the validation split, which is shuffled)
    # Samples each seed's counterfactual contribution is measured on: the first ones of the validation set, a fixed
    # random subset (the split is shuffled once); its sampling noise is measured in docs/performance.md.
    counterfactual_samples: int

    @property
    def name(self) -> str:
        return self.config.name

    def build_host(self) -> CNNHost | TransformerHost:
        if self.config.topology is Topology.CNN:
            assert self.config.cnn_host is not None
            return CNNHost(self.config.cnn_host)
        assert self.config.transformer_host is not None
        return TransformerHost(self.config.transformer_host)

    def load(self, data_dir: Path | None) -> TensorData:
        if self.needs_data_dir and data_dir is None:
            raise DataError(f"task {self.name} reads its data from a directory: pass --data-dir")
        data = self.loader(data_dir)
        n = min(self.max_validation, len(data.val_x))
        return TensorData(data.train_x, data.train_y, data.val_x[:n], data.val_y[:n])


def _needs_dir(load: Callable[[Path], TensorData]) -> Callable[[Path | None], TensorData]:
    def loader(data_dir: Path | None) -> TensorData:
        assert data_dir is not None
        return load(data_dir)

    return loader


_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        TaskConfig(
            name="digits",
            topology=Topology.CNN,
            cnn_host=CnnHostConfig(
                in_channels=1, image_size=8, num_classes=10, base_channels=4, num_blocks=3, pool_layers=2
            ),
            transformer_host=None,
            baseline_loss=math.log(10),
            target_loss=0.1,
            batch_size=64,
            batches_per_epoch=10,
            learning_rate=0.05,
            episode_length=60,
            default_slots=("r0c0", "r0c1", "r0c2"),
            seed_width=None,
        ),
        "8x8 handwritten digits shipped with scikit-learn (1438 train / 359 validation); CNN host",
        needs_data_dir=False,
        loader=lambda _: load_digits(),
        max_validation=1024,
        counterfactual_samples=COUNTERFACTUAL_SAMPLES,
    ),
    TaskSpec(
        TaskConfig(
            name="cifar10",
            topology=Topology.CNN,
            cnn_host=CnnHostConfig(
                in_channels=3, image_size=32, num_classes=10, base_channels=16, num_blocks=3, pool_layers=3
            ),
            transformer_host=None,
            baseline_loss=math.log(10),
            target_loss=0.5,
            batch_size=128,
            batches_per_epoch=40,
            learning_rate=0.05,
            episode_length=40,
            default_slots=("r0c0", "r0c1", "r0c2"),
            seed_width=None,
        ),
        "CIFAR-10 from the python batch files in --data-dir; CNN host",
        needs_data_dir=True,
        loader=_needs_dir(load_cifar10),
        max_validation=1024,
        counterfactual_samples=COUNTERFACTUAL_SAMPLES,
    ),
    TaskSpec(
        TaskConfig(
            name="charlm",
            topology=Topology.TRANSFORMER,
            cnn_host=None,
            transformer_host=TransformerHostConfig(
                vocab_size=len(CHARLM_ALPHABET), block_size=CHARLM_BLOCK, n_layer=3, n_head=4, n_embd=64, dropout=0.0
            ),
            baseline_loss=math.log(len(CHARLM_ALPHABET)),
            target_loss=1.5,
            batch_size=32,
            batches_per_epoch=15,
            learning_rate=0.002,
            episode_length=30,
            default_slots=("r0c0", "r0c1", "r0c2"),
            seed_width=None,
        ),
        "character-level language model on docstrings that ship with Python; transformer host",
        needs_data_dir=False,
        loader=lambda _: load_charlm(CHARLM_BLOCK),
        max_validation=128,
        counterfactual_samples=128,
    ),
    TaskSpec(
        TaskConfig(
            name="tinystories",
            topology=Topology.TRANSFORMER,
            cnn_host=None,
            transformer_host=TransformerHostConfig(
                vocab_size=BYTE_VOCAB, block_size=TINYSTORIES_BLOCK, n_layer=4, n_head=4, n_embd=128, dropout=0.0
            ),
            baseline_loss=math.log(BYTE_VOCAB),
            target_loss=1.5,
            batch_size=16,
            batches_per_epoch=30,
            learning_rate=0.001,
            episode_length=40,
            default_slots=("r0c0", "r0c1", "r0c2", "r0c3"),
            seed_width=None,
        ),
        "TinyStories text files from --data-dir, byte-level tokens; transformer host",
        needs_data_dir=True,
        loader=_needs_dir(lambda d: load_tinystories(d, TINYSTORIES_BLOCK)),
        max_validation=128,
        counterfactual_samples=128,
    ),
)

_DIGITS = _TASKS[0]
assert _DIGITS.config.cnn_host is not None
# The digits host at half width: under capacity, so growth has headroom (docs/experiments.md); all else is digits'
# but the seed width: conv seeds run at 4 channels (its slots have 2, 4 and 8), which let the static arm recover
# 0.79 of the headroom with 650 parameters against 0.50 with 1,072 at the slots' own widths
# (docs/plans/phases/phase0_a0c0/experiments_and_gates.md).
_DIGITS_NARROW = TaskSpec(
    dataclasses.replace(
        _DIGITS.config,
        name="digits_narrow",
        cnn_host=dataclasses.replace(_DIGITS.config.cnn_host, base_channels=_DIGITS.config.cnn_host.base_channels // 2),
        seed_width=4,
    ),
    "the digits with a host at half width (base 2): under capacity, so growth has headroom (docs/experiments.md)",
    needs_data_dir=_DIGITS.needs_data_dir,
    loader=_DIGITS.loader,
    max_validation=_DIGITS.max_validation,
    counterfactual_samples=_DIGITS.counterfactual_samples,
)
_CHARLM = next(task for task in _TASKS if task.name == "charlm")
assert _CHARLM.config.transformer_host is not None
# The char-LM host at half width (n_embd 32): under capacity, so growth has headroom (docs/experiments.md).
_CHARLM_NARROW = TaskSpec(
    dataclasses.replace(
        _CHARLM.config,
        name="charlm_narrow",
        transformer_host=dataclasses.replace(
            _CHARLM.config.transformer_host, n_embd=_CHARLM.config.transformer_host.n_embd // 2
        ),
    ),
    "the char-LM with a host at half width (n_embd 32): under capacity, so growth has headroom (docs/experiments.md)",
    needs_data_dir=_CHARLM.needs_data_dir,
    loader=_CHARLM.loader,
    max_validation=_CHARLM.max_validation,
    counterfactual_samples=_CHARLM.counterfactual_samples,
)
# Phase 1's sublayer lattice: the narrow char-LM six layers deep, with a slot after every attention residual
# (POST_ATTN, r0c{layer}) and every MLP residual (POST_MLP, r1c{layer}): 12 surfaces, all enabled by default, in
# action order (layer by layer). Six layers because the Phase 1 gates ask for 12 surfaces.
_LAYERWISE_LAYERS = 6
assert _CHARLM_NARROW.config.transformer_host is not None
_CHARLM_LAYERWISE = TaskSpec(
    dataclasses.replace(
        _CHARLM_NARROW.config,
        name="charlm_layerwise",
        transformer_host=dataclasses.replace(
            _CHARLM_NARROW.config.transformer_host,
            n_layer=_LAYERWISE_LAYERS,
            surfaces=(SurfaceType.POST_ATTN, SurfaceType.POST_MLP),
        ),
        default_slots=tuple(f"r{rank}c{layer}" for layer in range(_LAYERWISE_LAYERS) for rank in range(2)),
    ),
    "the narrow char-LM, 6 layers, a slot after every attention and every MLP residual (12 surfaces; Phase 1)",
    needs_data_dir=_CHARLM.needs_data_dir,
    loader=_CHARLM.loader,
    max_validation=_CHARLM.max_validation,
    counterfactual_samples=_CHARLM.counterfactual_samples,
)
_TASKS = (_DIGITS, _DIGITS_NARROW, *_TASKS[1:3], _CHARLM_NARROW, _CHARLM_LAYERWISE, *_TASKS[3:])

TASKS: Final[Mapping[str, TaskSpec]] = MappingProxyType({task.name: task for task in _TASKS})


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]
