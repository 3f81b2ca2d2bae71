"""The paper's models: the MNIST MLP, He et al.'s CIFAR ResNet-20, and the char-LSTM."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    """784-128-10 with tanh (the paper); ``activation="relu"`` is the COMP6258 report's variant.

    ``output_tanh=True`` reproduces the paper package's README model, which also squashes the
    logits with tanh (its loss then cannot go below 0.797; see paper.md §1.6).
    """

    def __init__(self, in_features: int = 784, hidden: int = 128, classes: int = 10,
                 activation: str = "tanh", output_tanh: bool = False):
        super().__init__()
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self.fc1, self.fc2 = nn.Linear(in_features, hidden), nn.Linear(hidden, classes)
        self.act = torch.tanh if activation == "tanh" else F.relu
        self.output_tanh = output_tanh

    def forward(self, x):
        out = self.fc2(self.act(self.fc1(x.flatten(1))))
        return torch.tanh(out) if self.output_tanh else out


class BasicBlock(nn.Module):
    """3×3 conv-BN-ReLU-3×3 conv-BN plus shortcut, then ReLU. The shortcut is He et al.'s option A:
    identity, subsampled by 2 and zero-padded in channels where the shape changes (no parameters)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            half = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra - half))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    """He et al. (2016) CIFAR ResNet with n = 3: 3 stages × 3 blocks, 16/32/64 channels, 0.27 M parameters."""

    def __init__(self, classes: int = 10, blocks_per_stage: int = 3, width: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        out = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class CharLSTM(nn.Module):
    """Character LSTM as in the report: one-hot characters → 2-layer LSTM(128) → linear → logits.

    Each window starts from a zero state, so batches are independent (no device-count-dependent
    hidden state as in the report's code).
    """

    def __init__(self, vocab: int, hidden: int = 128, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.vocab = vocab
        self.lstm = nn.LSTM(vocab, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, codes):
        x = F.one_hot(codes, self.vocab).to(self.fc.weight.dtype)
        out, _ = self.lstm(x)
        return self.fc(self.drop(out))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
