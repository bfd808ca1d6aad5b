"""A categorical model fitted once per job round and then applied item by item.

The aggregation state machine fits the model on every answer of a round (compact columns,
not the answers with their lineage), stores it as JSON, and each Map shard applies it to
its own items: an item's posterior is the class prior times, for each of its answers, the
answering worker's probability of giving that label when each class is true. For the
items of the fit this is exactly the fit's own final posterior, so sharding does not
change a result.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.domain.aggregation import NA_CLASS, categorical

__all__ = ["NA_CLASS", "CategoricalModel"]


@dataclass(frozen=True)
class CategoricalModel:
    """Class priors and per-worker confusion matrices (worker x true x observed)."""

    method: str
    classes: tuple[str, ...]
    priors: np.ndarray
    workers: tuple[str, ...]
    confusions: np.ndarray

    @classmethod
    def fit(cls, items: Sequence[str], workers: Sequence[str], labels: Sequence[str],
            label_order: Sequence[str], gold: Mapping[str, str] | None = None
            ) -> CategoricalModel:
        """Fit the default engine on long-form answers (N/A answers as NA_CLASS)."""
        engine = categorical.default_model(label_order=list(label_order))
        engine.fit(items, workers, labels, gold=gold)
        return cls(type(engine).__name__, tuple(engine.classes_), np.asarray(engine.priors_),
                   tuple(engine.workers_), np.asarray(engine.confusions_))

    def posterior(self, workers: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
        """Posterior over classes of one item given its answers.

        An answer from a worker or with a label the model has not seen carries no
        evidence (it cannot happen for answers of the round the model was fitted on).
        """
        worker_index = self._worker_index
        class_index = self._class_index
        log_joint = np.log(self.priors).copy()
        for worker, label in zip(workers, labels):
            w, k = worker_index.get(worker), class_index.get(label)
            if w is not None and k is not None:
                log_joint += np.log(self.confusions[w, :, k])
        probas = np.exp(log_joint - log_joint.max())
        probas /= probas.sum()
        return dict(zip(self.classes, probas.tolist()))

    @property
    def _worker_index(self) -> dict[str, int]:
        cached = self.__dict__.get("_workers_cache")
        if cached is None:
            cached = {worker: rank for rank, worker in enumerate(self.workers)}
            object.__setattr__(self, "_workers_cache", cached)
        return cached

    @property
    def _class_index(self) -> dict[str, int]:
        cached = self.__dict__.get("_classes_cache")
        if cached is None:
            cached = {label: rank for rank, label in enumerate(self.classes)}
            object.__setattr__(self, "_classes_cache", cached)
        return cached

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; from_json reads it back exactly (floats round-trip)."""
        return {"method": self.method, "classes": list(self.classes),
                "priors": self.priors.tolist(), "workers": list(self.workers),
                "confusions": self.confusions.tolist()}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CategoricalModel:
        """The model to_json wrote."""
        n_classes = len(body["classes"])
        confusions = np.asarray(body["confusions"], dtype=np.float64).reshape(
            len(body["workers"]), n_classes, n_classes)
        return cls(body["method"], tuple(body["classes"]),
                   np.asarray(body["priors"], dtype=np.float64), tuple(body["workers"]),
                   confusions)
