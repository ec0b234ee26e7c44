# A copy of the team's shared reference loop (../shared/baselines/plain_loop.py), kept here so a clean
# clone can run benchmarks/train_throughput.py; h200-plain-loop.json beside it is what it measured on an H200.
"""Reference: a plain hand-written PyTorch GPT training loop, timed on one GPU.

This is what a user would write instead of using scalebench (nanoGPT-style: bf16 autocast,
SDPA attention, fused AdamW, tied embeddings). Run it beside scalebench's own trainer in the
same call and compare tokens/s model by model:

    python plain_loop.py --models gpt-124m gpt-350m --compile --out plain.json

Prints one line per model and writes the rows as JSON.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {  # name: (n_layer, d_model, n_head)
    "gpt-s3m": (4, 256, 4),
    "gpt-s20m": (6, 512, 8),
    "gpt-124m": (12, 768, 12),
    "gpt-350m": (24, 1024, 16),
    "gpt-774m": (36, 1280, 20),
}
BATCH = {"gpt-s3m": 64, "gpt-s20m": 64, "gpt-124m": 32, "gpt-350m": 16, "gpt-774m": 16}


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.fc2 = nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2)
                   for t in self.qkv(self.ln1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, L, d, h, vocab=50304, ctx=1024):
        super().__init__()
        self.L, self.d = L, d
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(L))
        self.lnf = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx, tgt):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.lnf(x))
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), tgt.view(-1))

    def flops_per_token(self, T):
        # PaLM appendix B: 6N + 12*L*T*d, N = parameters without the position table
        n = sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()
        return 6 * n + 12 * self.L * T * self.d


def measure(name, compile_, steps=15, T=1024):
    L, d, h = SIZES[name]
    B = BATCH[name]
    torch.manual_seed(0)
    m = GPT(L, d, h, ctx=T).cuda()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, fused=True)
    fwd = torch.compile(m) if compile_ else m
    idx = torch.randint(0, 50304, (B, T), device="cuda")
    tgt = torch.randint(0, 50304, (B, T), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = time.time()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warm = time.time() - t
    torch.cuda.reset_peak_memory_stats()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(steps):
        step()
    e.record()
    torch.cuda.synchronize()
    dt = s.elapsed_time(e) / 1000 / steps
    row = {"model": name, "compile": compile_, "batch": B, "seq": T, "step_s": dt,
           "tokens_per_s": B * T / dt, "tflops": B * T / dt * m.flops_per_token(T) / 1e12,
           "warmup_s": warm, "peak_mem_bytes": torch.cuda.max_memory_allocated()}
    del m, opt, fwd
    torch.cuda.empty_cache()
    return row


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(SIZES))
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", default="plain_loop.json")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for name in a.models:
        r = measure(name, a.compile)
        rows.append(r)
        print(f'{name:10s} compile={a.compile!s:5s} tok/s={r["tokens_per_s"]:>10.0f} '
              f'TFLOP/s={r["tflops"]:6.1f} mem={r["peak_mem_bytes"] / 2**30:.1f}GiB warm={r["warmup_s"]:.0f}s',
              flush=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
