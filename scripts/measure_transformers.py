"""Measure transformers' GPU memory on a real CUDA GPU, for data/measurements.yaml.

    python scripts/measure_transformers.py --model llama-3.2-1b qwen3-0.6b \\
        --contexts 1024,8192,32768 --out measured.yaml

For each catalogue model it builds the architecture from the catalogue's config.json with
random weights directly on the GPU (nothing is downloaded), runs a prefill of each context
length and a few decode steps, and records PyTorch's peak allocated memory
(``torch.cuda.max_memory_allocated``), its peak reserved memory, and the GPU memory in use as
the driver reports it (``torch.cuda.mem_get_info``). The entries it writes carry the provenance
"measured with scripts/measure_transformers.py" and every setting used; review them and append
them to data/measurements.yaml. Needs PyTorch with CUDA and transformers, which the project
does not install by default: ``pip install torch transformers``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import Catalogue, load_catalogue  # noqa: E402

PROVENANCE = "measured with scripts/measure_transformers.py"


@dataclass(frozen=True)
class Run:
    """One measured prefill-and-decode at one context length."""

    model: str
    context: int  # prompt tokens + generated tokens
    new_tokens: int
    peak_allocated: int
    peak_reserved: int
    device_used: int  # total - free after the run, as the driver sees it
    gpu_name: str
    gpu_total: int
    torch_version: str
    transformers_version: str
    attn_implementation: str


def entries(run: Run, catalogue: Catalogue) -> list[dict[str, Any]]:
    """The measurement entries for one run, in data/measurements.yaml's schema."""
    try:
        gpu: str | None = catalogue.gpu(run.gpu_name).id
    except ValueError:
        gpu = None
    base = {
        "model": run.model,
        "engine": "transformers",
        "engine_version": run.transformers_version,
        "engine_version_note": f"torch {run.torch_version}",
        "weights": "bf16",
        "kv_cache": None,
        "context": run.context,
        "batch": 1,
        "gpus": 1,
        "gpu": gpu,
        **({} if gpu else {"gpu_memory_gib": round(run.gpu_total / 2**30, 2)}),
        "flash_attention": run.attn_implementation != "eager",
        "settings": {
            "prompt_tokens": run.context - run.new_tokens,
            "new_tokens": run.new_tokens,
            "attn_implementation": run.attn_implementation,
            "torch_dtype": "bfloat16",
            "weights": "random, built from the catalogue's config.json",
            "gpu_as_reported": run.gpu_name,
            "date": datetime.date.today().isoformat(),
        },
        "unit": "MiB",
        "unit_as_printed": "bytes",
        "unit_reading": "the script records bytes and writes MiB (2^20 bytes)",
        "source": PROVENANCE,
    }
    stem = f"measured-{run.model}-{run.context}-{run.attn_implementation}"
    return [
        {
            "id": f"{stem}-allocated",
            **base,
            "quantity": "torch.cuda.max_memory_allocated() over prefill and decode",
            "estimate_of": "allocated_bytes",
            "device": None,
            "value": round(run.peak_allocated / 2**20, 2),
            "quote": f"max_memory_allocated = {run.peak_allocated} bytes",
        },
        {
            "id": f"{stem}-in-use",
            **base,
            "quantity": "GPU memory in use after the run (torch.cuda.mem_get_info: total - free)",
            "estimate_of": "total_bytes",
            "device": None,
            "value": round(run.device_used / 2**20, 2),
            "quote": f"mem_get_info total - free = {run.device_used} bytes "
            f"(max_memory_reserved = {run.peak_reserved} bytes)",
        },
    ]


def measure(model_id: str, config: dict[str, Any], context: int, new_tokens: int, attn: str) -> Run:
    """Build the model with random weights on the GPU and measure one generate() call."""
    import torch
    import transformers

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU visible to PyTorch")
    torch.cuda.empty_cache()
    auto = transformers.AutoConfig.for_model(**config)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(
            auto, torch_dtype=torch.bfloat16, attn_implementation=attn
        )
    model.eval()
    vocab = auto.get_text_config().vocab_size
    prompt = torch.randint(0, vocab, (1, context - new_tokens), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model.generate(
            prompt,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    run = Run(
        model=model_id,
        context=context,
        new_tokens=new_tokens,
        peak_allocated=torch.cuda.max_memory_allocated(),
        peak_reserved=torch.cuda.max_memory_reserved(),
        device_used=total - free,
        gpu_name=torch.cuda.get_device_name(),
        gpu_total=total,
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        attn_implementation=attn,
    )
    del model
    torch.cuda.empty_cache()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", required=True, help="catalogue model ids")
    parser.add_argument("--contexts", default="1024,8192", help="comma-separated token counts")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"])
    parser.add_argument("--out", type=Path, default=Path("measured.yaml"))
    args = parser.parse_args(argv)
    catalogue = load_catalogue()
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print(
            "error: this script needs PyTorch with CUDA and transformers: "
            "pip install torch transformers",
            file=sys.stderr,
        )
        return 2
    contexts = [int(c) for c in args.contexts.split(",")]
    found = []
    for model_id in args.model:
        config = dict(catalogue.model(model_id).config)
        for context in contexts:
            run = measure(model_id, config, context, args.new_tokens, args.attn)
            found += entries(run, catalogue)
            print(
                f"{model_id} {context}: allocated {run.peak_allocated / 2**30:.2f} GiB, "
                f"in use {run.device_used / 2**30:.2f} GiB"
            )
    import yaml

    class NoAliases(yaml.SafeDumper):  # entries share their settings; write each in full
        def ignore_aliases(self, data: object) -> bool:
            return True

    args.out.write_text(yaml.dump(found, Dumper=NoAliases, sort_keys=False, allow_unicode=True))
    print(
        f"wrote {len(found)} entries to {args.out}: review them, then append to "
        "data/measurements.yaml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
