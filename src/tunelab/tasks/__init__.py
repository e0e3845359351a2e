"""Task heads: what the model predicts and how it is scored. Each task knows no strategy.

Single-label classification (tasks.classification) is the original, richest path (few-shot,
distillation, export, serving); every other head implements tasks.base.Task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.tasks.base import Task


def task_for(config: RunConfig) -> Task:
    """The Task object for a config whose task_kind is not single-label classification."""
    kind = config.task_kind
    if kind == "token-classification":
        from tunelab.tasks.token_classification import TokenClassification as TaskClass
    elif kind == "question-answering":
        from tunelab.tasks.question_answering import QuestionAnswering as TaskClass
    elif kind == "similarity":
        from tunelab.tasks.similarity import Similarity as TaskClass
    elif kind == "multi-label":
        from tunelab.tasks.multi_label import MultiLabel as TaskClass
    elif kind == "regression":
        from tunelab.tasks.regression import Regression as TaskClass
    else:
        raise ValueError(f"single-label classification has no Task object (got {kind!r})")
    return TaskClass(config)


__all__ = ["task_for"]
