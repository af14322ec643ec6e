"""Position-wise feed-forward networks (section 3.3), equation 2:

    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2

"While the linear transformations are the same across different positions, they use
different parameters from layer to layer. Another way of describing this is as two
convolutions with kernel size 1. The dimensionality of input and output is
d_model = 512, and the inner-layer has dimensionality d_ff = 2048."

``relu_dropout`` (ModelConfig.relu_dropout, tensor2tensor's option of that name)
drops units of the inner layer during training; the paper's setting is 0 (off).
"""

from __future__ import annotations

from torch import Tensor, nn


class PositionwiseFeedForward(nn.Module):
    """Two linear maps with a ReLU between, applied to each position alike."""

    def __init__(self, d_model: int, d_ff: int, relu_dropout: float = 0.0) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(relu_dropout)  # on max(0, x W_1 + b_1); 0: off

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, T, d_model)."""
        return self.w_2(self.dropout(self.w_1(x).relu()))  # inner: (B, T, d_ff)
