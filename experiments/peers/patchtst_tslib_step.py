"""Time one training step of Time-Series-Library's PatchTST in PyTorch, for side-by-side timing
with `archzoo bench train-step --arch transformer` at the same configuration.

The model below re-creates the compute graph of TSLib's `models/PatchTST.py` (commit 3623514):
instance normalisation, end padding by `stride` (ReplicationPad1d), unfold into patches, a
bias-free `Linear(patch_len, d_model)` plus sinusoidal positions, post-norm encoder layers
(`AttentionLayer(FullAttention)` with q/k/v/o projections, attention dropout, residual + LayerNorm,
two kernel-1 `Conv1d` with GELU, residual + LayerNorm), a BatchNorm over the final tokens and the
flatten head. Training step = forward, MSE, backward, Adam (lr 1e-4), as TSLib's `exp` loop does.

    python3 experiments/peers/patchtst_tslib_step.py [--threads 2] [--steps 20] [--warmup 5]

Needs `torch` (pip install torch numpy); prints one JSON line.
"""

import argparse
import json
import math
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


class PositionalEmbedding(nn.Module):
    def __init__(self, d_model, max_len=5000):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).float().unsqueeze(1)
        div = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        return self.pe[:, : x.size(1)]


class PatchEmbedding(nn.Module):
    def __init__(self, d_model, patch_len, stride, dropout):
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        self.pad = nn.ReplicationPad1d((0, stride))
        self.value = nn.Linear(patch_len, d_model, bias=False)
        self.position = PositionalEmbedding(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):  # x: [b, c, L]
        n_vars = x.shape[1]
        x = self.pad(x).unfold(-1, self.patch_len, self.stride)  # [b, c, p, patch_len]
        x = x.reshape(-1, x.shape[2], x.shape[3])
        return self.dropout(self.value(x) + self.position(x)), n_vars


class AttentionLayer(nn.Module):
    def __init__(self, d_model, n_heads, dropout):
        super().__init__()
        self.h = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        b, l, _ = x.shape
        q = self.q(x).view(b, l, self.h, -1)
        k = self.k(x).view(b, l, self.h, -1)
        v = self.v(x).view(b, l, self.h, -1)
        scores = torch.einsum("blhe,bshe->bhls", q, k) / math.sqrt(q.shape[-1])
        a = self.dropout(torch.softmax(scores, dim=-1))
        y = torch.einsum("bhls,bshd->blhd", a, v).contiguous().view(b, l, -1)
        return self.o(y)


class EncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout):
        super().__init__()
        self.attention = AttentionLayer(d_model, n_heads, dropout)
        self.conv1 = nn.Conv1d(d_model, d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(d_ff, d_model, kernel_size=1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.norm1(x + self.dropout(self.attention(x)))
        y = self.dropout(F.gelu(self.conv1(x.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm2(x + y)


class PatchTST(nn.Module):
    def __init__(self, seq_len, pred_len, d_model, n_heads, d_ff, layers, dropout, patch_len, stride):
        super().__init__()
        self.pred_len = pred_len
        self.embed = PatchEmbedding(d_model, patch_len, stride, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(layers)
        )
        self.norm = nn.BatchNorm1d(d_model)
        n_patches = int((seq_len - patch_len) / stride + 2)
        self.head = nn.Linear(d_model * n_patches, pred_len)
        self.head_dropout = nn.Dropout(dropout)

    def forward(self, x):  # [b, L, c]
        means = x.mean(1, keepdim=True).detach()
        x = x - means
        stdev = torch.sqrt(torch.var(x, dim=1, keepdim=True, unbiased=False) + 1e-5)
        x = x / stdev
        z, n_vars = self.embed(x.permute(0, 2, 1))
        for layer in self.layers:
            z = layer(z)
        z = self.norm(z.transpose(1, 2)).transpose(1, 2)
        z = z.reshape(-1, n_vars, z.shape[-2], z.shape[-1]).permute(0, 1, 3, 2)
        y = self.head_dropout(self.head(z.flatten(start_dim=-2))).permute(0, 2, 1)
        return y * stdev[:, 0, :].unsqueeze(1) + means[:, 0, :].unsqueeze(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=96)
    p.add_argument("--pred-len", type=int, default=96)
    p.add_argument("--channels", type=int, default=7)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--d-ff", type=int, default=2048)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--patch-len", type=int, default=16)
    p.add_argument("--stride", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = PatchTST(a.seq_len, a.pred_len, a.d_model, a.heads, a.d_ff, a.layers, a.dropout,
                     a.patch_len, a.stride)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(a.batch, a.seq_len, a.channels)
    y = torch.randn(a.batch, a.pred_len, a.channels)
    model.train()
    samples = []
    for i in range(a.warmup + a.steps):
        started = time.perf_counter()
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            samples.append((time.perf_counter() - started) * 1e3)
    print(json.dumps({
        "peer": "tslib-patchtst-pytorch",
        "torch": torch.__version__,
        "threads": a.threads,
        "params": sum(p.numel() for p in model.parameters()),
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "steps": a.steps,
        "config": vars(a),
    }))


if __name__ == "__main__":
    main()
