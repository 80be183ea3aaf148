"""MQAR in PyTorch with a 2-layer, 1-head attention language model whose block switches between
Zoology's attention baseline and archzoo's token Transformer, to find which difference decides
whether attention leaves the 1/K plateau at (L 128, K 8), width 64 on the `cpu` preset's budget.
A cross-check for the README's token-probe section, not part of archzoo's results.

Data: Zoology's `multiquery_ar` with blanks between the queries (figure 2's
`random_non_queries=False`; p(g) ∝ g^-0.99), drawn with NumPy (train seed 1, test seed 2).
Model: token embedding N(0, 0.02²) tied to the head; positions `learned` (Zoology's figure 2)
or `rotary` (archzoo's); after each attention, `identity` (Zoology's `state_mixer` Identity:
r + LayerNorm(r)), `gelu` (archzoo's pre-norm MLP of width 2d) or `none`; initialisation `gpt`
(Zoology's `_init_weights`: N(0, 0.02²), biases 0, out_proj/fc2 at 0.02/√(2·layers)) or `torch`
(PyTorch's defaults, which burn's match); dropout on the attention weights and the embeddings
(Zoology: 0.1 each). Training as the `cpu` preset: 100k examples, batch 32, AdamW (weight decay
0.1), cosine per step over 12 epochs, stop above 0.99; one thread.

    python3 experiments/peers/zoology_mqar.py --eval-every 1000                  # Zoology's
    python3 experiments/peers/zoology_mqar.py --eval-every 1000 --pos rotary --mlp gelu \
        --init torch --attn-dropout 0 --embed-dropout 0                          # archzoo's before f1d730e
    python3 experiments/peers/zoology_mqar.py --eval-every 1000 --pos rotary --mlp gelu  # archzoo's now

Needs `torch` and `numpy`; prints the loss and test accuracy every `--eval-every` steps and
after each epoch.
"""
import argparse, math, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--vocab", type=int, default=256)
p.add_argument("--len", type=int, default=128)
p.add_argument("--pairs", type=int, default=8)
p.add_argument("--d", type=int, default=64)
p.add_argument("--train", type=int, default=100_000)
p.add_argument("--test", type=int, default=1000)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--epochs", type=int, default=12)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--pos", choices=["learned", "rotary"], default="learned")
p.add_argument("--mlp", choices=["identity", "gelu", "none"], default="identity")
p.add_argument("--init", choices=["gpt", "torch"], default="gpt")
p.add_argument("--attn-dropout", type=float, default=0.1)
p.add_argument("--embed-dropout", type=float, default=0.1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--eval-every", type=int, default=0, help="steps; 0 = per epoch")
a = p.parse_args()
torch.manual_seed(a.seed)
torch.set_num_threads(1)


def mqar(n, seed):
    rng = np.random.default_rng(seed)
    V, L, K = a.vocab, a.len, a.pairs
    ctx = 2 * K
    keys = np.argsort(rng.random((n, V // 2 - 1)), axis=1)[:, :K] + 1
    vals = np.argsort(rng.random((n, V - V // 2)), axis=1)[:, :K] + V // 2
    space = (L - ctx) // 2
    w = 0.01 * np.arange(1, space + 1) ** (0.01 - 1)
    # weighted sampling without replacement: Gumbel-top-k on log weights
    g = np.log(w)[None, :] - np.log(-np.log(rng.random((n, space))))
    gaps = np.argsort(-g, axis=1)[:, :K]
    x = np.zeros((n, L + 1), dtype=np.int64)
    x[:, 0:ctx:2] = keys
    x[:, 1:ctx:2] = vals
    np.put_along_axis(x[:, ctx:], gaps * 2, keys, axis=1)
    y = np.full((n, L + 1), -100, dtype=np.int64)
    np.put_along_axis(y, gaps * 2 + ctx + 1, vals, axis=1)
    return torch.tensor(x[:, :-1]), torch.tensor(y[:, 1:])


class Rotary(nn.Module):
    def __init__(self, dim, max_len):
        super().__init__()
        inv = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        t = torch.arange(max_len).float()[:, None] * inv[None, :]
        self.register_buffer("cos", t.cos().repeat_interleave(2, -1))
        self.register_buffer("sin", t.sin().repeat_interleave(2, -1))

    def forward(self, x):  # [b, h, l, k], pairs (2i, 2i+1)
        l = x.shape[2]
        x2 = torch.stack([-x[..., 1::2], x[..., 0::2]], -1).flatten(-2)
        return x * self.cos[:l] + x2 * self.sin[:l]


class Block(nn.Module):
    def __init__(self, d, rot):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.Wqkv, self.out_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.rot = rot
        if a.mlp == "gelu":
            self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def attn(self, x):
        b, l, d = x.shape
        q, k, v = self.Wqkv(x).view(b, l, 3, 1, d).permute(2, 0, 3, 1, 4)
        if self.rot is not None:
            q, k = self.rot(q), self.rot(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=a.attn_dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(b, l, d))

    def forward(self, r):
        r = r + self.attn(self.norm1(r))
        if a.mlp == "none":
            return r
        if a.mlp == "identity":  # Zoology's TransformerBlock with state_mixer = Identity
            return r + self.norm2(r)
        return r + self.fc2(F.gelu(self.fc1(self.norm2(r))))


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        d = a.d
        self.emb = nn.Embedding(a.vocab, d)
        self.pos = nn.Embedding(a.len, d) if a.pos == "learned" else None
        rot = Rotary(d, a.len) if a.pos == "rotary" else None
        self.blocks = nn.ModuleList([Block(d, rot) for _ in range(2)])
        self.ln_f = nn.LayerNorm(d)
        nn.init.normal_(self.emb.weight, std=0.02)
        if a.init == "gpt":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Embedding):
                    nn.init.normal_(m.weight, std=0.02)
            for n_, p_ in self.named_parameters():
                if n_.endswith("out_proj.weight") or n_.endswith("fc2.weight"):
                    nn.init.normal_(p_, std=0.02 / math.sqrt(4))

    def forward(self, x):
        h = self.emb(x)
        if self.pos is not None:
            h = h + self.pos.weight[: x.shape[1]]
        h = F.dropout(h, a.embed_dropout, self.training)
        for blk in self.blocks:
            h = blk(h)
        return self.ln_f(h) @ self.emb.weight.T


xtr, ytr = mqar(a.train, 1)
xte, yte = mqar(a.test, 2)
model = LM()
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.1)
steps_per_epoch = a.train // a.batch
total = a.epochs * steps_per_epoch
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)


def evaluate():
    model.eval()
    with torch.no_grad():
        accs = []
        for i in range(0, a.test, 250):
            x, y = xte[i:i + 250], yte[i:i + 250]
            pred = model(x).argmax(-1)
            m = y != -100
            accs.append(((pred == y) & m).sum(1).float() / m.sum(1))
        acc = torch.cat(accs).mean().item()
    model.train()
    return acc


print(vars(a), flush=True)
t0, step = time.time(), 0
for ep in range(a.epochs):
    perm = torch.randperm(a.train)
    tot = 0.0
    for i in range(steps_per_epoch):
        idx = perm[i * a.batch:(i + 1) * a.batch]
        logits = model(xtr[idx])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), ytr[idx].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot += loss.item()
        step += 1
        if a.eval_every and step % a.eval_every == 0:
            print(f"step {step} loss {loss.item():.3f} acc {evaluate():.4f} {time.time()-t0:.0f}s", flush=True)
    acc = evaluate()
    print(f"epoch {ep+1} loss {tot/steps_per_epoch:.4f} acc {acc:.4f} {time.time()-t0:.0f}s", flush=True)
    if acc > 0.99:
        break
