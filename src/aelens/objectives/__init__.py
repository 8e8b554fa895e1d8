"""One LightningModule per objective, all built on the shared networks of :mod:`aelens.models.nets`."""

from .base import Objective
from .embedding import EmbeddingDecoder
from .reconstruction import Reconstruction
from .tagger import DirectionTagger

OBJECTIVES: dict[str, type[Objective]] = {
    "ae": Reconstruction,
    "decoder": EmbeddingDecoder,
    "tagger": DirectionTagger,
}

__all__ = ["OBJECTIVES", "Objective", "Reconstruction", "EmbeddingDecoder", "DirectionTagger"]
