"""A deep ensemble of classifiers: several networks trained side by side, probabilities averaged.

Networks trained from different initialisations (and dropout draws) make different mistakes on
inputs they are unsure of; the average of their probabilities makes fewer (Lakshminarayanan et
al. 2017). Each member must learn from its own loss: trained only through the averaged output,
the members would learn as one larger model and lose that diversity.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ProbabilityEnsemble(nn.Module):
    """Members mapping the same input to class logits (B, K).

    In training the output is every member's logits, (M, B, K), for a loss per member. In eval
    mode it is the log of the members' mean probabilities, (B, K): softmax and argmax read it
    like logits, and cross-entropy on it is the ensemble's own loss.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *inputs: Tensor | None) -> Tensor:
        logits = torch.stack([member(*inputs) for member in self.members])  # (M, B, K)
        if self.training:
            return logits
        log_probs = torch.log_softmax(logits, dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
