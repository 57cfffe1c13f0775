"""The grown model as an artifact: the host with its fossilized seeds, saved at the end of an episode.

A saved model is a directory holding `model.safetensors` (every weight and buffer) and `model.json` (a
GrownModelRecord: the host's shape, the slots, each fossil's blueprint, blend and internal level, and what the model
measured when it was saved). `load_grown_model(directory)` rebuilds the modules from the record, then loads the
weights: no pickle, so a saved model is safe to load from anyone.

Only fossilized seeds are part of the grown model: a seed still live when the episode ended was never committed to
the host (its id is listed in `live_seeds_left_out`). A fossil composes into the stream exactly as SeedSlot does in
FUSED mode, with its alpha fixed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Final

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from esper.kasmina.alpha import GatedBlend, blend
from esper.kasmina.blueprints import MicrostructuredSeed, build_seed
from esper.kasmina.contracts import GrownModelRecord, GrownSeed
from esper.kasmina.hosts import CNNHost, TransformerHost
from esper.kasmina.model import MorphogeneticModel, classification_accuracy, cross_entropy
from esper.leyline import BLUEPRINT_IDS, LIVE_STAGES, AlphaAlgorithm, SeedStage, Topology, WireError, dumps, loads

WEIGHTS_FILE: Final = "model.safetensors"
RECORD_FILE: Final = "model.json"
EXTRA_STATE: Final = "_extra_state"  # a module's non-tensor state (a ladder's level): rebuilt from the record
GROWN_OR_LIVE: Final = LIVE_STAGES | {SeedStage.FOSSILIZED}


class GrownSlot(nn.Module):
    """One fossil in the host stream. Its attribute names match SeedSlot's (`seed`, `gate`), so the weights of a
    MorphogeneticModel load into a GrownModel under the same keys."""

    def __init__(self, seed: nn.Module, gate: GatedBlend | None, algorithm: AlphaAlgorithm, alpha: float) -> None:
        super().__init__()
        self.seed = seed
        self.gate = gate
        self.algorithm = algorithm
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blend(self.algorithm, x, x, self.seed(x), self.alpha, self.gate)


def build_host(record: GrownModelRecord) -> CNNHost | TransformerHost:
    if record.topology is Topology.CNN:
        if record.cnn_host is None:
            raise ValueError("grown model record: cnn_host is null for a cnn model")
        return CNNHost(record.cnn_host)
    if record.transformer_host is None:
        raise ValueError("grown model record: transformer_host is null for a transformer model")
    return TransformerHost(record.transformer_host)


def _grown_slot(record: GrownModelRecord, seed: GrownSeed, channels: int) -> GrownSlot:
    module = build_seed(record.topology, seed.blueprint, channels, record.seed_width)
    if isinstance(module, MicrostructuredSeed):
        module.set_internal_level(seed.internal_level)
    elif seed.internal_level != 0:
        raise ValueError(
            f"grown model record: seed {seed.seed_id} has internal_level {seed.internal_level}, "
            f"but {seed.blueprint_id} has no internal levels"
        )
    gate = GatedBlend(channels) if seed.alpha_algorithm is AlphaAlgorithm.GATE else None
    return GrownSlot(module, gate, seed.alpha_algorithm, seed.alpha)


class GrownModel(nn.Module):
    """A host and its fossils, for inference: `model(inputs)` gives the logits."""

    def __init__(self, record: GrownModelRecord) -> None:
        super().__init__()
        host = build_host(record)
        channels = {spec.slot_id: spec.channels for spec in host.injection_specs()}
        unknown = [s.slot_id for s in record.seeds if s.slot_id not in channels]
        if unknown:
            raise ValueError(f"grown model record: the host has no slot(s) {unknown}; it has {', '.join(channels)}")
        self.record = record
        self.host = host  # one attribute only: a second reference would register the host's weights twice
        self.slots = nn.ModuleDict({s.slot_id: _grown_slot(record, s, channels[s.slot_id]) for s in record.seeds})
        self._positions = {s: host.position(s) for s in host.execution_order() if s in self.slots}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        host = self.host
        x, done = host.embed(inputs), 0
        for slot_id, position in self._positions.items():
            x = self.slots[slot_id](host.run_ops(x, done, position))
            done = position
        return host.readout(host.run_ops(x, done, host.num_ops))


def fossils(model: MorphogeneticModel) -> tuple[tuple[GrownSeed, ...], tuple[str, ...]]:
    """The model's fossilized seeds as records, and the ids of its live seeds (left out of the grown model)."""
    grown, live = [], []
    for slot in model.iter_slots():
        state, seed = slot.state, slot.seed
        if state is None or seed is None or slot.stage not in GROWN_OR_LIVE:
            continue  # an empty slot, or a pruned seed on its way out
        if slot.stage in LIVE_STAGES:
            live.append(state.seed_id)
            continue
        ladder = slot.microstructure()
        grown.append(
            GrownSeed(
                slot_id=slot.slot_id,
                seed_id=state.seed_id,
                blueprint=state.blueprint,
                blueprint_id=BLUEPRINT_IDS[state.blueprint],
                alpha_algorithm=state.alpha_algorithm,
                alpha=slot.alpha,
                internal_level=0 if ladder is None else ladder.internal_level,
            )
        )
    return tuple(grown), tuple(live)


def grown_from(model: MorphogeneticModel, record: GrownModelRecord) -> GrownModel:
    """A GrownModel holding a copy of `model`'s host and fossil weights (on the CPU, in eval mode)."""
    grown = GrownModel(record)
    source = model.state_dict()
    grown.load_state_dict({key: source[key] for key in grown.state_dict()}, strict=True)
    return grown.eval()


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy %) of `model` on one batch, as the environments' validation measures them."""
    logits = model(inputs)
    return float(cross_entropy(logits, targets)), 100.0 * float(classification_accuracy(logits, targets))


def save_grown_model(grown: GrownModel, directory: Path) -> None:
    """model.safetensors and model.json into `directory`; both appear at once (written into a temporary directory
    beside it, then renamed), so a reader never sees half a model. A directory holding a saved model is replaced
    (a resumed run plays the episodes of its unfinished round again); any other existing path is refused."""
    if directory.exists() and not (directory / RECORD_FILE).is_file():
        raise FileExistsError(f"{directory} already exists and is not a saved grown model")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        tensors = {
            k: v.detach().cpu().contiguous() for k, v in grown.state_dict().items() if not k.endswith(EXTRA_STATE)
        }
        save_file(tensors, str(staging / WEIGHTS_FILE))
        (staging / RECORD_FILE).write_text(dumps(grown.record) + "\n", encoding="utf-8")
        _swap_in(staging, directory)
    except BaseException:  # nothing half-written: the staging directory goes, then the error goes on
        if staging.exists():
            shutil.rmtree(staging)
        raise


def _swap_in(staging: Path, directory: Path) -> None:
    """Rename `staging` to `directory`; an earlier model there is moved aside first and removed after."""
    if not directory.exists():
        staging.rename(directory)
        return
    old = staging.with_name(staging.name + ".old")
    directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old)


def read_record(directory: Path) -> GrownModelRecord:
    path = directory / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no {RECORD_FILE}: not a saved grown model")
    try:
        return loads(GrownModelRecord, path.read_text(encoding="utf-8"))
    except WireError as exc:  # name the file: the record alone does not say where it came from
        raise WireError(exc.type_name, exc.field, f"{exc.message} (in {path})") from exc


def load_grown_model(path: Path | str) -> GrownModel:
    """The grown model saved in directory `path` (by `esper train --save-model` or `esper export`), in eval mode on
    the CPU: `model(inputs)` gives the logits; `model.record` says what it is."""
    directory = Path(path)
    grown = GrownModel(read_record(directory))
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} holds no {WEIGHTS_FILE}")
    state: dict[str, object] = dict(load_file(str(weights)))
    state |= {k: v for k, v in grown.state_dict().items() if k.endswith(EXTRA_STATE)}
    grown.load_state_dict(state, strict=True)
    return grown.eval()
