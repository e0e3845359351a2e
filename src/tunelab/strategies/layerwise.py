"""Full fine-tuning that forgets less: layer-wise learning-rate decay and gradual unfreezing (ULMFiT).

Both rest on one idea: lower layers hold the most general knowledge, so they should move least.
Depth 0 is the embeddings, 1..L the encoder layers, L+1 everything above (pooler, head).
"""

from __future__ import annotations

import math
import re
from typing import Any

from transformers import Trainer, TrainerCallback

_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def depth(name: str, num_layers: int) -> int:
    """Depth of a parameter by its name: 0 embeddings, i+1 for encoder layer i, num_layers+1 above them."""
    match = _LAYER.search(name)
    if match:
        return int(match.group(1)) + 1
    return 0 if "embeddings" in name else num_layers + 1


def layerwise_optimizer(trainer: Trainer, num_layers: int, decay: float | None) -> Any:
    """The Trainer's optimizer class over every parameter that may train, lr scaled by decay**(top - depth)."""
    model, args = trainer.model, trainer.args
    decayed = set(trainer.get_decay_parameter_names(model))
    optimizer_class, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad and not getattr(parameter, "_tunelab_unfreezes", False):
            continue
        level = depth(name, num_layers)
        scale = (decay or 1.0) ** (num_layers + 1 - level)
        group = groups.setdefault((level, name in decayed), {
            "params": [], "lr": args.learning_rate * scale, "weight_decay": args.weight_decay if name in decayed else 0.0})
        group["params"].append(parameter)
    kwargs = {key: value for key, value in kwargs.items() if key != "lr"}
    return optimizer_class(list(groups.values()), lr=args.learning_rate, **kwargs)


class GradualUnfreezing(TrainerCallback):
    """Epoch 1 trains the head only; each later epoch unfreezes more layers top-down; the last trains them all."""

    def __init__(self, model: Any, num_layers: int, epochs: float) -> None:
        self.num_layers = num_layers
        self.stages = max(math.ceil(epochs), 1)
        self.parameters = [(depth(name, num_layers), p) for name, p in model.named_parameters() if p.requires_grad]
        for _, parameter in self.parameters:
            parameter._tunelab_unfreezes = True  # in the optimizer although frozen at the start
        self.lowest_trained: list[int] = []  # per epoch, the lowest depth that trained (for the run's record)
        self._apply(0)

    def lowest_depth(self, stage: int) -> int:
        """Lowest trainable depth in `stage` (0-based epoch): num_layers+1 (head) at 0, 0 (everything) at the last."""
        if self.stages == 1:
            return 0
        top = self.num_layers + 1
        return top - round(min(stage, self.stages - 1) * top / (self.stages - 1))

    def _apply(self, stage: int) -> None:
        lowest = self.lowest_depth(stage)
        for level, parameter in self.parameters:
            parameter.requires_grad_(level >= lowest)
            if level < lowest:
                parameter.grad = None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        stage = int(state.epoch or 0)
        self._apply(stage)
        self.lowest_trained.append(self.lowest_depth(stage))
