"""The governor: watches validation loss and rolls the model back when training breaks.

Triggers: a non-finite loss (immediately); collapse to random-guess loss after the run had learned (immediately);
divergence, i.e. several consecutive epochs far above the recent history. A rollback restores the last snapshot
(host and fossilized seeds), prunes every other live seed, and the environment clears all optimizer state.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

import torch

from esper.kasmina import MorphogeneticModel
from esper.leyline import GovernorReason, SeedStage


@dataclass(frozen=True, slots=True)
class GovernorConfig:
    history: int = 20  # recent healthy losses kept
    min_history: int = 5  # samples before collapse or divergence can be judged
    collapse_margin: float = 0.05  # collapse: loss >= random_guess * (1 - margin) after learning
    learned_fraction: float = 0.6  # "had learned": mean history below this fraction of random-guess loss
    divergence_sigmas: float = 6.0
    divergence_ratio: float = 3.0  # and above this multiple of the mean
    divergence_patience: int = 3  # consecutive anomalous epochs


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: GovernorReason
    loss: float | None  # None when not finite
    threshold: float | None


class Governor:
    def __init__(self, random_guess_loss: float, config: GovernorConfig | None = None) -> None:
        self.random_guess_loss = random_guess_loss
        self.config = config if config is not None else GovernorConfig()
        self._history: deque[float] = deque(maxlen=self.config.history)
        self._anomalies = 0
        self._snapshot: dict[str, torch.Tensor] | None = None
        self.snapshot_epoch = 0

    def check(self, loss: float) -> Verdict | None:
        """A verdict when the model must be rolled back; None when the loss is acceptable (it joins the history)."""
        c = self.config
        if not math.isfinite(loss):
            return Verdict(GovernorReason.NON_FINITE, None, None)
        if len(self._history) >= c.min_history:
            mean = statistics.fmean(self._history)
            collapse_at = self.random_guess_loss * (1.0 - c.collapse_margin)
            if mean < c.learned_fraction * self.random_guess_loss and loss >= collapse_at:
                return Verdict(GovernorReason.COLLAPSE, loss, collapse_at)
            spread = statistics.pstdev(self._history)
            threshold = max(mean + c.divergence_sigmas * spread, c.divergence_ratio * mean)
            if loss > threshold:
                self._anomalies += 1
                if self._anomalies >= c.divergence_patience:
                    return Verdict(GovernorReason.DIVERGENCE, loss, threshold)
                return None  # anomalies stay out of the history
        self._anomalies = 0
        self._history.append(loss)
        return None

    def snapshot(self, model: MorphogeneticModel, epoch: int) -> None:
        """Copy the host and fossilized seeds (everything a rollback keeps)."""
        keep_slots = {f"slots.{s.slot_id}." for s in model.iter_slots() if s.stage is SeedStage.FOSSILIZED}
        self._snapshot = {
            key: value.detach().clone()
            for key, value in model.state_dict().items()
            # tensors only: a fossilized ladder's level (its extra state) can no longer change
            if isinstance(value, torch.Tensor)
            and (not key.startswith("slots.") or any(key.startswith(prefix) for prefix in keep_slots))
        }
        self.snapshot_epoch = epoch

    def restore(self, model: MorphogeneticModel) -> None:
        if self._snapshot is None:
            raise RuntimeError("the governor has no snapshot to roll back to")
        own = model.state_dict()
        missing = [k for k in self._snapshot if k not in own]
        if missing:
            raise RuntimeError(f"snapshot keys missing from the model: {missing[:5]}")
        with torch.no_grad():
            for key, value in self._snapshot.items():
                own[key].copy_(value)
        self._history.clear()
        self._anomalies = 0
