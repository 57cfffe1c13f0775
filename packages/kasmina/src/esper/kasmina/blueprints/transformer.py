"""Transformer seeds over [B, T, D]. Residual seeds zero-initialise their output layer (identity at birth)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esper.kasmina.blueprints.common import zero_init

SEED_ATTENTION_HEADS = 4


class NoopSeed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LayerNormSeed(nn.Module):
    """x + tanh(s) * (LN(x) - x), s = 0 at birth."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed: torch.Tensor = self.norm(x)
        return x + torch.tanh(self.scale) * (normed - x)


class LoraSeed(nn.Module):
    """x + up(down(x)) with rank r and no bias; up starts at zero."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim, bias=False)
        zero_init(self.up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta: torch.Tensor = self.up(self.down(x))
        return x + delta


def _heads(dim: int) -> int:
    return SEED_ATTENTION_HEADS if dim % SEED_ATTENTION_HEADS == 0 else 1


class CausalAttentionSeed(nn.Module):
    """x + proj(causal multi-head attention(x)) via scaled-dot-product attention with is_causal."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.heads = _heads(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        zero_init(self.proj)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        shape = (batch, steps, self.heads, dim // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = self.attend(q, k, v).transpose(1, 2).reshape(batch, steps, dim)
        delta: torch.Tensor = self.proj(y)
        return x + delta


class MaskedAttentionSeed(CausalAttentionSeed):
    """flex_attention: the same block with an explicit causal block mask (FlexAttention's role upstream; on CPU the
    mask goes through scaled-dot-product attention). The mask is cached per sequence length and device."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._masks: dict[tuple[int, str], torch.Tensor] = {}

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        steps = q.shape[-2]
        key = (steps, str(q.device))
        if key not in self._masks:
            self._masks[key] = torch.ones(steps, steps, dtype=torch.bool, device=q.device).tril()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self._masks[key])


class MlpSeed(nn.Module):
    """x + fc2(GELU(fc1(x))) with `expansion` x width; fc2 starts at zero."""

    def __init__(self, dim: int, expansion: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, expansion * dim)
        self.fc2 = nn.Linear(expansion * dim, dim)
        zero_init(self.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta: torch.Tensor = self.fc2(F.gelu(self.fc1(x)))
        return x + delta
