"""aiayn: "Attention Is All You Need" (Vaswani et al. 2017), reproduced and annotated.

The public API::

    from aiayn import ModelConfig, Transformer, greedy_decode, beam_search
    model = Transformer(ModelConfig.base(vocab_size=37000))
    logits = model(src, tgt_in)  # (B, T, vocab)
"""

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .config import ModelConfig, TrainConfig
from .decoding import beam_search, greedy_decode, length_penalty
from .errors import AiaynError
from .loss import cross_entropy_loss, label_smoothed_cross_entropy
from .masks import causal_mask, padding_mask, target_mask
from .model import Transformer
from .schedule import make_optimizer, make_scheduler, noam_lr

__version__ = "0.1.0"

__all__ = [
    "AiaynError",
    "ModelConfig",
    "MultiHeadAttention",
    "TrainConfig",
    "Transformer",
    "beam_search",
    "causal_mask",
    "cross_entropy_loss",
    "greedy_decode",
    "label_smoothed_cross_entropy",
    "length_penalty",
    "make_optimizer",
    "make_scheduler",
    "noam_lr",
    "padding_mask",
    "scaled_dot_product_attention",
    "target_mask",
]
