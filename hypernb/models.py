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


# -- several configurations at once -----------------------------------------------------------------
class Batched(nn.Module):
    """K copies of a model, trained at once: every parameter and buffer is stacked along a leading
    dimension K, and one forward pass runs all K (``torch.func.vmap`` over ``functional_call``).

    Inputs are ``[K, B, ...]`` (each configuration its own batch) and outputs ``[K, B, ...]``; an
    input expanded from ``[B, ...]`` (stride 0 along K, e.g. a shared test batch) is not copied.
    Convolutions become grouped convolutions and BatchNorm keeps statistics per configuration, so
    configuration k computes exactly what ``models[k]`` alone would.
    """

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        from torch.func import stack_module_state

        self.K = len(models)
        params, buffers = stack_module_state(models)
        self.names = list(params)  # the members' own parameter names, in order
        for name, value in params.items():
            self.register_parameter(name.replace(".", "__"), nn.Parameter(value.detach()))
        for name, value in buffers.items():
            self.register_buffer(name.replace(".", "__"), value.detach().clone())
        self._buffer_names = list(buffers)
        import copy

        self._base = [copy.deepcopy(models[0]).to("meta")]  # the structure only (a list: not a submodule)

    def _state(self):
        return ({n: getattr(self, n.replace(".", "__")) for n in self.names},
                {n: getattr(self, n.replace(".", "__")) for n in self._buffer_names})

    def forward(self, x):
        from torch.func import functional_call, vmap

        _check_leading(x, self.K, "[K, B, ...]")
        base = self._base[0]
        base.train(self.training)
        params, buffers = self._state()
        shared = x.dim() > 0 and x.shape[0] == self.K and x.stride(0) == 0 and self.K > 1

        def one(p, b, xb):
            return functional_call(base, (p, b), (xb,))

        return vmap(one, in_dims=(0, 0, None if shared else 0))(params, buffers, x[0] if shared else x)

    def member_state(self, k: int) -> dict:
        """Configuration k's state dict, in the single model's names."""
        params, buffers = self._state()
        return {n: v[k].detach().clone() for n, v in {**params, **buffers}.items()}


class BatchedCharLSTM(nn.Module):
    """K character LSTMs at once (cuDNN's LSTM cannot be vmapped).

    ``impl="loop"`` runs the recurrence with batched matrix products ([K, B, H] × [K, H, 4H] per
    time step), the input projection as a gather of the one-hot rows; ``impl="blockdiag"`` runs
    one ``nn.LSTM`` of hidden size K·H whose weights are block-diagonal, so cuDNN's fused kernels do
    all K at once (K times the FLOPs, far fewer launches: the choice for a GPU). Both compute what
    each member's ``CharLSTM`` computes (the off-diagonal blocks are exact zeros; a member's
    non-finite weight is zeroed there so that it cannot leak into the others through 0 · NaN).
    """

    def __init__(self, models: list[CharLSTM], impl: str = "auto"):
        super().__init__()
        first = models[0]
        if impl not in ("auto", "loop", "blockdiag"):
            raise ValueError(f"impl must be auto, loop or blockdiag, got {impl!r}")
        if first.drop.p:
            raise ValueError("BatchedCharLSTM needs dropout = 0 (masks would be drawn differently than alone)")
        self.K, self.vocab, self.impl = len(models), first.vocab, impl
        self.hidden, self.layers = first.lstm.hidden_size, first.lstm.num_layers
        self.names = [n for n, _ in first.named_parameters()]
        for n in self.names:
            stacked = torch.stack([dict(m.named_parameters())[n].detach() for m in models])
            self.register_parameter(n.replace(".", "__"), nn.Parameter(stacked))

    def _p(self, name):
        return getattr(self, name.replace(".", "__"))

    def forward(self, codes):  # [K, B, T] → logits [K, B, T, V]
        _check_leading(codes, self.K, "[K, B, T] (character codes)", dims=3)
        impl = self.impl if self.impl != "auto" else ("blockdiag" if codes.is_cuda else "loop")
        out = self._blockdiag(codes) if impl == "blockdiag" else self._loop(codes)
        w, b = self._p("fc.weight"), self._p("fc.bias")  # [K, V, H], [K, V]
        K, B, T, H = out.shape
        return torch.baddbmm(b.unsqueeze(1), out.reshape(K, B * T, H), w.transpose(1, 2)).view(K, B, T, -1)

    def _loop(self, codes):
        K, B, T = codes.shape
        x = None
        for layer in range(self.layers):
            w_ih, w_hh = self._p(f"lstm.weight_ih_l{layer}"), self._p(f"lstm.weight_hh_l{layer}")
            b_ih, b_hh = self._p(f"lstm.bias_ih_l{layer}"), self._p(f"lstm.bias_hh_l{layer}")
            if layer == 0:  # one-hot input: the projection is a row of W_ih per character
                rows = w_ih.transpose(1, 2)  # [K, V, 4H]
                proj = rows[torch.arange(K, device=codes.device)[:, None, None], codes] + b_ih[:, None, None, :]
            else:
                proj = torch.baddbmm(b_ih.unsqueeze(1), x.reshape(K, B * T, -1), w_ih.transpose(1, 2))
                proj = proj.view(K, B, T, -1)
            h = torch.zeros(K, B, self.hidden, dtype=w_hh.dtype, device=w_hh.device)
            c = torch.zeros_like(h)
            outs = []
            w_hh_t = w_hh.transpose(1, 2)
            for t in range(T):
                gates = proj[:, :, t] + torch.baddbmm(b_hh.unsqueeze(1), h, w_hh_t)
                i, f, g, o = gates.chunk(4, dim=2)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs, dim=2)  # [K, B, T, H]
        return x

    def _blockdiag(self, codes):
        K, B, T = codes.shape
        H, V = self.hidden, self.vocab
        eye = torch.eye(K, dtype=self._p("fc.weight").dtype, device=codes.device)
        weights = {}
        for layer in range(self.layers):
            for kind in ("ih", "hh"):
                w = torch.nan_to_num(self._p(f"lstm.weight_{kind}_l{layer}"), nan=0.0, posinf=0.0, neginf=0.0)
                w = w.view(K, 4, H, w.shape[-1])  # gate-major rows, as cuDNN orders them
                # [4, K, H, K, in]: member k's block on the diagonal of every gate
                weights[f"weight_{kind}_l{layer}"] = torch.einsum("kghi,kl->gkhli", w, eye).reshape(4 * K * H, -1)
                b = torch.nan_to_num(self._p(f"lstm.bias_{kind}_l{layer}"), nan=0.0, posinf=0.0, neginf=0.0)
                weights[f"bias_{kind}_l{layer}"] = b.view(K, 4, H).transpose(0, 1).reshape(-1)
        x = torch.nn.functional.one_hot(codes, V).to(eye.dtype)  # [K, B, T, V]
        x = x.permute(1, 2, 0, 3).reshape(B, T, K * V)  # row b holds every member's b-th sequence
        lstm = nn.LSTM(K * V, K * H, self.layers, batch_first=True, device="meta", dtype=eye.dtype)
        out, _ = torch.func.functional_call(lstm, weights, (x,))
        return out.view(B, T, K, H).permute(2, 0, 1, 3)  # [K, B, T, H]

    def member_state(self, k: int) -> dict:
        return {n: self._p(n)[k].detach().clone() for n in self.names}


def _check_leading(x: torch.Tensor, K: int, shape: str, dims: int | None = None) -> None:
    """A batched model's input has the configurations first: a clear error instead of vmap's."""
    if x.dim() == 0 or x.shape[0] != K or (dims is not None and x.dim() != dims):
        raise ValueError(f"this batched model trains K = {K} configurations and takes inputs {shape}, each "
                         f"configuration its own batch; got shape {tuple(x.shape)}. To give every configuration "
                         "the same batch x, pass x.expand(K, *x.shape) (not copied)")


def batched(models: list[nn.Module], impl: str = "auto") -> nn.Module:
    """One module that trains ``models`` (same architecture) at once; see :class:`Batched`."""
    if isinstance(models[0], CharLSTM):
        return BatchedCharLSTM(models, impl)
    return Batched(models)
