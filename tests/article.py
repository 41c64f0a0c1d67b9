"""The article's own model code, copied verbatim but for its `Relu_output1` typo."""

from __future__ import annotations

import torch
from torch import nn


class ArticleMinModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 1)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(2, 1)
        self.relu2 = nn.ReLU()
        self.output_layer = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu_output1 = self.relu1(self.fc1(x))
        relu_output2 = self.relu2(self.fc2(x))
        return self.output_layer(torch.cat((x, relu_output1, relu_output2), dim=-1))


def create_sequential_model(layers_list: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(1, len(layers_list)):
        layers.append(nn.Linear(layers_list[i - 1], layers_list[i]))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def lt10_model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
