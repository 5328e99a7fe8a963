"""Measure what a loss holds over the logits, per logit, on the CPU.

    python scripts/logit_peak.py [--rows 8] [--tokens 96] [--vocab 32768]

Runs transformers' cross-entropy (the fp32 upcast) and LitGPT's (on 16-bit logits, 128 tokens
a chunk) over the logits of a 16-bit output layer, and TRL's ``selective_log_softmax`` (from
the installed trl) as TRL's trainers read them: DPO over a batch of chosen and rejected rows,
GRPO over the completion with the temperature divided either in place on a view
(``logits.div_``, TRL 1.0.0 to 1.9.x) or not (1.10.0 on), each on fp32 logits (Accelerate's
autocast converts the model's outputs) and on 16-bit ones. It counts every allocation the
process makes through ``posix_memalign`` and ``free``, which PyTorch's CPU allocator uses, with a
small hook compiled by ``cc`` and preloaded (LD_PRELOAD): autograd then runs as in training (a
TorchDispatchMode would make it take its out-of-place paths and add a tensor). The peak above
the start of the forward pass, per logit, is printed beside ``calc.loss_logit_bytes`` for the
same setting. Needs PyTorch and TRL beside the project's own dependencies, which do not include
them (``pip install torch trl``), and a C compiler.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import FinetuneRequest, logit_tokens, loss_logit_bytes, parse_config  # noqa: E402

# Live bytes of every block of 64 KiB or more from posix_memalign, by address, and their peak
HOOK = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#define CAP (1 << 20)
static void *keys[CAP]; static size_t sizes[CAP], cur, top;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int (*real_memalign)(void **, size_t, size_t); static void (*real_free)(void *);
__attribute__((constructor)) static void init(void) {
  real_memalign = dlsym(RTLD_NEXT, "posix_memalign"); real_free = dlsym(RTLD_NEXT, "free"); }
static size_t slot(void *p) { return ((uintptr_t)p >> 6) & (CAP - 1); }
int posix_memalign(void **m, size_t a, size_t n) {
  int r = real_memalign(m, a, n);
  if (r || n < 65536) return r;
  pthread_mutex_lock(&mu); size_t i = slot(*m);
  while (keys[i]) i = (i + 1) & (CAP - 1);
  keys[i] = *m; sizes[i] = n; cur += n; if (cur > top) top = cur;
  pthread_mutex_unlock(&mu); return r; }
void free(void *p) {
  if (!real_free) return;
  if (p) { pthread_mutex_lock(&mu); size_t i = slot(p);
    while (keys[i] && keys[i] != p) i = (i + 1) & (CAP - 1);
    if (keys[i]) { cur -= sizes[i]; size_t j = i;
      for (;;) { j = (j + 1) & (CAP - 1); if (!keys[j]) break; size_t k = slot(keys[j]);
        if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
          keys[i] = keys[j]; sizes[i] = sizes[j]; i = j; } }
      keys[i] = 0; }
    pthread_mutex_unlock(&mu); }
  real_free(p); }
void logit_peak_reset(void) { pthread_mutex_lock(&mu); top = cur; pthread_mutex_unlock(&mu); }
size_t logit_peak_top(void) { return top; }
size_t logit_peak_now(void) { return cur; }
"""

HIDDEN = 256  # the output layer's input width: the hidden states are not what is measured


@dataclass(frozen=True)
class Case:
    """One way of reading log-probabilities, and the request that describes it to calc."""

    method: str  # "lora" (a cross-entropy loss), "dpo" or "grpo"
    fp32: bool  # the logits as Accelerate's autocast returns them
    in_place: bool = False  # GRPO's temperature divided in place on a view
    upcast: bool = True  # the cross-entropy casts 16-bit logits to fp32 first (transformers)

    @property
    def name(self) -> str:
        if self.method == "lora":
            loss = "transformers' loss" if self.upcast else "16-bit cross-entropy"
            return f"sft, {loss}"
        division = (" in place" if self.in_place else " plain") if self.method == "grpo" else ""
        return f"{self.method}{division}, {'fp32' if self.fp32 else '16-bit'} logits"

    def request(self, rows: int, tokens: int) -> FinetuneRequest:
        pairs = self.method == "dpo"
        return FinetuneRequest(
            method=self.method,  # type: ignore[arg-type]
            precision="amp" if self.fp32 else "bf16",
            temperature_in_place=self.in_place,
            loss_upcast=self.upcast,
            micro_batch=rows // 2 if pairs else rows,
            seq_len=tokens + 1 if self.method == "grpo" else tokens,
            completion_len=tokens,
        )


CASES = (
    # transformers' ForCausalLMLoss (``logits.float()``, then cross-entropy over the shifted
    # labels), and LitGPT's in bf16-true: cross-entropy on the 16-bit logits, 128 tokens a chunk
    Case("lora", False),
    Case("lora", False, upcast=False),
    Case("dpo", True),
    Case("dpo", False),
    Case("grpo", True, in_place=True),
    Case("grpo", True),
    Case("grpo", False, in_place=True),
    Case("grpo", False),
)


def hook() -> Any:
    """The preloaded hook, or None when this process runs without it."""
    lib = ctypes.CDLL(None)
    if not hasattr(lib, "logit_peak_top"):
        return None
    for name in ("logit_peak_top", "logit_peak_now"):
        getattr(lib, name).restype = ctypes.c_size_t
    return lib


def rerun_with_hook(argv: list[str]) -> int:
    """Compile the hook and run this script again with it preloaded."""
    build = Path(tempfile.mkdtemp(prefix="logit-peak-"))
    (build / "hook.c").write_text(HOOK)
    library = build / "hook.so"
    command = ["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(build / "hook.c"), "-ldl"]
    if subprocess.run(command, check=False).returncode != 0:
        print("logit_peak.py: the allocation hook did not compile (needs cc)", file=sys.stderr)
        return 2
    env = {**os.environ, "LD_PRELOAD": str(library)}
    return subprocess.run([sys.executable, __file__, *argv], env=env, check=False).returncode


def measure(case: Case, rows: int, tokens: int, vocab: int, lib: Any) -> float:
    """The loss's peak above its start, per logit it reads."""
    import torch
    from trl.trainer.utils import selective_log_softmax

    weight = torch.randn(vocab, HIDDEN, dtype=torch.bfloat16) * 0.02
    hidden = torch.randn(rows, tokens + 1, HIDDEN, dtype=torch.bfloat16, requires_grad=True)
    ids = torch.randint(0, vocab, (rows, tokens + 1))
    start = lib.logit_peak_now()
    lib.logit_peak_reset()
    if case.method == "lora":
        return _cross_entropy_peak(case, hidden, weight, ids, lib, start) / (rows * tokens * vocab)
    logits = hidden @ weight.T
    if case.fp32:
        logits = logits.float()
    logits = logits[:, :-1, :]
    if case.in_place:
        logits.div_(0.7)
    elif case.method == "grpo":
        logits = logits / 0.7
    logps = selective_log_softmax(logits, ids[:, 1:])
    del logits
    if case.method == "dpo":
        sums = logps.sum(-1)
        loss = -torch.nn.functional.logsigmoid(0.1 * (sums[: rows // 2] - sums[rows // 2 :])).mean()
    else:
        loss = (-torch.exp(logps - logps.detach()) * torch.randn(rows, 1)).mean()
    loss.backward()
    peak: int = lib.logit_peak_top() - start
    return peak / (rows * tokens * vocab)


def _cross_entropy_peak(
    case: Case, hidden: Any, weight: Any, ids: Any, lib: Any, start: int
) -> int:
    """A supervised loss over every token but the last: transformers' (the fp32 upcast, labels
    shifted by padding) or LitGPT's (the output layer and cross-entropy 128 tokens at a time, on
    16-bit logits, which its loop keeps until the backward pass)."""
    import torch

    f = torch.nn.functional
    labels = f.pad(ids, (0, 1), value=-100)[:, 2:]  # the row's next tokens, the last one ignored
    if case.upcast:
        logits = (hidden[:, :-1] @ weight.T).float()
        loss = f.cross_entropy(logits.view(-1, logits.size(-1)), labels.reshape(-1))
        del logits
        loss.backward()
        return int(lib.logit_peak_top() - start)
    chunks = [x @ weight.T for x in hidden[:, :-1].split(128, dim=1)]
    losses = [
        f.cross_entropy(c.reshape(-1, c.size(-1)), t.reshape(-1), reduction="none")
        for c, t in zip(chunks, labels.split(128, dim=1), strict=True)
    ]
    torch.cat(losses).mean().backward()
    return int(lib.logit_peak_top() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="sequences (DPO: chosen + rejected)")
    parser.add_argument("--tokens", type=int, default=96, help="tokens a row reads")
    parser.add_argument("--vocab", type=int, default=32768)
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        print("logit_peak.py needs PyTorch and TRL: pip install torch trl", file=sys.stderr)
        return 2
    lib = hook()
    if lib is None:
        return rerun_with_hook(sys.argv[1:] if argv is None else argv)
    config = {
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": 512,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "vocab_size": args.vocab,
    }
    arch = parse_config(config)
    print(f"{'log-probabilities':32s} {'measured':>10s} {'estimated':>10s}  (bytes a logit)")
    for case in CASES:
        kept = measure(case, args.rows, args.tokens, args.vocab, lib)
        request = case.request(args.rows, args.tokens)
        estimated = loss_logit_bytes(arch, request) / (logit_tokens(request) * args.vocab)
        print(f"{case.name:32s} {kept:10.2f} {estimated:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
