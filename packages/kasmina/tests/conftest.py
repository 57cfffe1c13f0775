"""Small real models and a helper that drives a seed through its lifecycle with real training steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from esper.kasmina import (
    CNNHost,
    GateThresholds,
    MorphogeneticModel,
    QualityGates,
    TransformerHost,
    cross_entropy,
)
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.kasmina.contracts.transformer_host_config import TransformerHostConfig
from esper.leyline import BlueprintAction, GerminationStyle, ListSink, SeedStage, SurfaceType, TelemetryHub, Topology

CNN_CONFIG = CnnHostConfig(in_channels=1, image_size=8, num_classes=4, base_channels=8, num_blocks=3, pool_layers=2)
TF_CONFIG = TransformerHostConfig(vocab_size=17, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
# The sublayer lattice: r0c{i} after layer i's attention, r1c{i} after its MLP.
TF_LATTICE_CONFIG = TransformerHostConfig(
    vocab_size=17,
    block_size=12,
    n_layer=2,
    n_head=2,
    n_embd=16,
    dropout=0.0,
    surfaces=(SurfaceType.POST_ATTN, SurfaceType.POST_MLP),
)
FAST_GATES = GateThresholds(min_training_epochs=1, min_blending_epochs=1)


class Rig:
    """A MorphogeneticModel (CNN, or the transformer lattice host) with a telemetry sink and a tiny fixed batch."""

    def __init__(
        self,
        slots: tuple[str, ...] = ("r0c0", "r0c1", "r1c0"),
        gates: QualityGates | None = None,
        embargo_epochs: int = 5,
        seed: int = 0,
        topology: Topology = Topology.CNN,
        cnn_config: CnnHostConfig = CNN_CONFIG,
        seed_width: int | None = None,
    ) -> None:
        torch.manual_seed(seed)
        self.sink = ListSink()
        self.hub = TelemetryHub("test-run", sinks=(self.sink,))
        self.emitter = self.hub.emitter(0)
        self.emitter.start_episode(0)
        cnn = topology is Topology.CNN
        self.model = MorphogeneticModel(
            CNNHost(cnn_config) if cnn else TransformerHost(TF_LATTICE_CONFIG),
            slots,
            self.emitter,
            gates=gates or QualityGates(thresholds=FAST_GATES),
            embargo_epochs=embargo_epochs,
            seed_width=seed_width,
        )
        generator = torch.Generator().manual_seed(seed)
        if cnn:
            size, classes = cnn_config.image_size, cnn_config.num_classes
            self.x = torch.randn(16, cnn_config.in_channels, size, size, generator=generator)
            self.y = torch.randint(0, classes, (16,), generator=generator)
        else:
            self.x = torch.randint(0, 17, (8, 10), generator=generator)
            self.y = torch.randint(0, 17, (8, 10), generator=generator)

    def germinate(
        self,
        slot_id: str,
        blueprint: BlueprintAction = BlueprintAction.CONV_LADDER,
        style: GerminationStyle = GerminationStyle.LINEAR_ADD,
        tempo: int = 3,
        target: float = 1.0,
    ) -> None:
        self.model.slot(slot_id).germinate(
            blueprint, f"seed-{slot_id}", style, tempo, target, self.model.host_param_count()
        )

    def train_step(self) -> None:
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        _, loss = self.model(self.x, incubate=True).losses(cross_entropy, self.y)
        loss.backward()
        self.model.record_gradients()

    def epoch(self) -> None:
        """One 'epoch': a training step, a fused validation recorded into the slots, and the tick."""
        self.train_step()
        self.model.eval()
        self.model.record_validation(self.model.fused_validation(self.x, self.y))
        self.model.step_epoch()

    def drive(self, slot_id: str, stage: SeedStage, **germinate: object) -> None:
        """Germinate and advance through real epochs until the seed reaches `stage` (a live stage)."""
        slot = self.model.slot(slot_id)
        if slot.state is None:
            self.germinate(slot_id, **germinate)  # type: ignore[arg-type]
        for _ in range(50):
            if slot.stage is stage:
                return
            if slot.stage is SeedStage.HOLDING and stage is SeedStage.FOSSILIZED:
                assert slot.fossilize().passed
                continue
            advancing = slot.stage in (SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.BLENDING)
            if advancing and slot.advance().passed:
                continue
            self.epoch()
        raise AssertionError(f"could not drive {slot_id} to {stage.name}; it is {slot.stage.name}")

    def events(self, name: str) -> list[object]:
        return [e.payload for e in self.sink.events if e.event_type.name == name]


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def make_rig() -> Callable[..., Rig]:
    return Rig


@pytest.fixture
def transformer_host() -> TransformerHost:
    torch.manual_seed(0)
    return TransformerHost(TF_CONFIG)
