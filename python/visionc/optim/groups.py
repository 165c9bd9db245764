"""Parameter groups for fine-tuning with weight decay on weight matrices only.

The usual recipe (timm's param_groups_weight_decay, the HF Trainer's decay_parameters) does
not decay biases, normalisation scales and shifts, layer-scale gammas, class tokens or
position embeddings. The rule here: a parameter goes to the no-decay group when

  1. it has at most one dimension (biases, LayerNorm / BatchNorm weights, layer scales), or
  2. its dotted name, lower-cased, has a component equal to a `no_decay` entry
     ("embeddings.cls_token", "pos_embed"), or a component that, split on "_" and with
     trailing digits removed from each piece, has a piece equal to an entry
     ("norm1" -> "norm", "layernorm_before" -> "layernorm", "ln_1" -> "ln", "fc_norm" -> "norm").

Matching whole pieces, not substrings, keeps e.g. "kernel" from matching "ln".
Parameters with requires_grad False are left out entirely.
"""
from __future__ import annotations

import re

__all__ = ["param_groups_for_weight_decay", "NO_DECAY"]

NO_DECAY = ("bias", "norm", "layernorm", "ln", "gamma", "cls_token", "position_embeddings", "pos_embed")


def _excluded(name: str, ndim: int, no_decay: set[str]) -> bool:
    if ndim <= 1:
        return True
    for comp in name.lower().split("."):
        if comp in no_decay:
            return True
        if any(re.sub(r"\d+$", "", piece) in no_decay for piece in comp.split("_")):
            return True
    return False


def param_groups_for_weight_decay(named_parameters, weight_decay: float, no_decay=NO_DECAY) -> list[dict]:
    """[{"params": decayed, "param_names": .., "weight_decay": weight_decay},
        {"params": not decayed, "param_names": .., "weight_decay": 0.0}] (empty groups dropped).

    named_parameters: (name, parameter) pairs, or a model with .named_parameters()."""
    if hasattr(named_parameters, "named_parameters"):
        named_parameters = named_parameters.named_parameters()
    keys = {str(k).lower() for k in no_decay}
    decay, rest = ([], []), ([], [])
    for name, p in named_parameters:
        if not getattr(p, "requires_grad", True):
            continue
        names, params = rest if _excluded(name, p.ndim, keys) else decay
        names.append(name)
        params.append(p)
    groups = [{"params": decay[1], "param_names": decay[0], "weight_decay": float(weight_decay)},
              {"params": rest[1], "param_names": rest[0], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
