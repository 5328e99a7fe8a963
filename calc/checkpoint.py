"""What a config.json says about the files it ships with: the weight format its
``quantization_config`` (or its dtype) names, and which modules stay in 16 bits.

The format ids returned here name catalogue weight formats; a group size the catalogue has no
entry for is described by :class:`GroupFormat` and built into a format by the caller.
Sources for each ``quant_method``:

- ``awq``: transformers ``AwqConfig`` (bits, group_size, zero_point, modules_to_not_convert);
  AutoAWQ ``WQLinear_GEMM`` stores int32-packed weights, fp16 scales and packed zeros per group.
- ``gptq`` / ``auto-round``: transformers ``GPTQConfig`` (bits, group_size, desc_act, sym);
  GPTQ ``QuantLinear`` adds fp16 scales, packed zeros per group and an int32 ``g_idx`` per row.
- ``fp8`` (transformers ``FineGrainedFP8Config``: weight_block_size, modules_to_not_convert),
  ``fbgemm_fp8`` (per-channel), ``modelopt`` (quant_algo FP8 or NVFP4, exclude_modules globs).
- ``compressed-tensors``: ``config_groups`` (weights num_bits, type int|float, strategy,
  group_size, symmetric) and ``ignore`` (exact names or ``re:`` regexes).
- ``bitsandbytes``: load_in_4bit (bnb_4bit_quant_type nf4|fp4, bnb_4bit_use_double_quant)
  or load_in_8bit, llm_int8_skip_modules.
- ``mxfp4``: gpt-oss's experts (modules_to_not_convert).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from calc._errors import ConfigError
from calc.records import record

# config.json dtype names -> catalogue formats; vLLM and transformers load a float32 checkpoint
# in its own dtype only when told to, so "float32" is kept as fp32 here and engines decide.
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16"}


@record
class GroupFormat:
    """An integer format with one scale (and, asymmetric, one zero point) per group of
    ``group_size`` input values of one output column; ``group_size`` 0 means one per column."""

    family: str  # "awq", "gptq" or "compressed-tensors"
    bits: int
    group_size: int
    zero_point: bool

    @property
    def id(self) -> str:
        group = f"g{self.group_size}" if self.group_size else "channel"
        return f"{self.family.replace('-', '_')}_{self.bits}bit_{group}"

    @property
    def scale_bits(self) -> int:
        """Bits per group: a 16-bit scale, plus a zero point of ``bits`` bits when asymmetric."""
        return 16 + (self.bits if self.zero_point else 0)


@record
class Checkpoint:
    """The weight format the checkpoint's files are stored in."""

    method: str  # the quant_method, or "dtype" for a plain 16/32-bit checkpoint
    format_id: str | None  # catalogue format; None when ``group`` describes it
    label: str  # words for notes: "AWQ 4-bit, group 128"
    keep: tuple[str, ...] = ()  # module-name patterns left unquantised
    group: GroupFormat | None = None

    @property
    def quantized(self) -> bool:
        return self.method != "dtype"

    @property
    def modelled(self) -> bool:
        return self.format_id is not None or self.group is not None

    def unmodelled_message(self) -> str:
        return (
            f"config.json's quantization_config uses quant_method {self.method!r}, whose size "
            f"the estimator does not model (it reads {', '.join(sorted(_READERS))}); pass "
            "--weights to name the format the files hold"
        )


def read_checkpoint(config: Mapping[str, Any], *, where: str) -> Checkpoint | None:
    """The checkpoint format a config.json declares; None when it says nothing."""
    quant = config.get("quantization_config")
    mlx = config.get("quantization")
    plain = quant is None or (isinstance(quant, Mapping) and "quant_method" not in quant)
    if isinstance(mlx, Mapping) and plain:  # mlx_lm.convert writes both, without a method
        return _mlx(_Quant(mlx, where, "quantization"))
    text = config.get("text_config")
    if quant is None and isinstance(text, Mapping):  # Kimi K2.5 keeps it with its text model
        quant = text.get("quantization_config")
    if quant is None:
        dtype = config.get("torch_dtype", config.get("dtype"))
        if not isinstance(dtype, str) or dtype not in DTYPES:
            return None
        return Checkpoint("dtype", DTYPES[dtype], f"{dtype} (config.json's dtype)")
    if not isinstance(quant, Mapping):
        raise ConfigError(
            f"{where}: 'quantization_config' must be an object, got {quant!r}",
            path=("quantization_config",),
        )
    method = quant.get("quant_method")
    if not isinstance(method, str) or not method:
        raise ConfigError(
            f"{where}: quantization_config needs a 'quant_method' (e.g. \"awq\"), got {method!r}",
            path=("quantization_config", "quant_method"),
        )
    reader = _READERS.get(method)
    if reader is None:  # readable, but the estimator cannot tell its size: the reader must say
        return Checkpoint(method, None, f"quant_method {method!r}")
    return reader(_Quant(quant, where))


class _Quant:
    """Typed access to a quantization_config, with errors that name the key."""

    def __init__(self, raw: Mapping[str, Any], where: str, name: str = "quantization_config"):
        self.raw = raw
        self.where = where
        self.name = name

    def error(self, key: str, expected: str) -> ConfigError:
        value = self.raw.get(key)
        return ConfigError(
            f"{self.where}: {self.name} {key!r} must be {expected}, got {value!r}",
            path=(self.name, key),
        )

    def integer(self, key: str, default: int, allowed: Sequence[int] = ()) -> int:
        value = self.raw.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "an integer")
        if allowed and value not in allowed:
            raise self.error(key, "one of " + ", ".join(map(str, allowed)))
        return value

    def names(self, *keys: str) -> tuple[str, ...]:
        found: list[str] = []
        for key in keys:
            value = self.raw.get(key)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(key, "a list of module names")
            found += value
        return tuple(found)


def _group(q: _Quant, key: str = "group_size") -> int:
    """A group size; -1 (GPTQ, AWQ) and absent mean one scale per output column (0 here)."""
    size = q.integer(key, -1)
    if size == -1 or size == 0:
        return 0
    if size < 0:
        raise q.error(key, "a positive integer or -1 (one group per column)")
    return size


def _group_words(group: int) -> str:
    return f"group {group}" if group else "per channel"


def _awq(q: _Quant) -> Checkpoint:
    bits = q.integer("bits", q.integer("w_bit", 4), allowed=(4,))
    group = _group(q, "group_size" if "group_size" in q.raw else "q_group_size")
    fmt = GroupFormat("awq", bits, group, zero_point=bool(q.raw.get("zero_point", True)))
    keep = q.names("modules_to_not_convert")
    return Checkpoint("awq", None, f"AWQ {bits}-bit, {_group_words(group)}", keep, fmt)


def _gptq(q: _Quant) -> Checkpoint:
    method = str(q.raw["quant_method"])
    bits = q.integer("bits", 4, allowed=(2, 3, 4, 8))
    group = _group(q)
    sym = q.raw.get("sym", True) is not False
    # GPTQ's g_idx (one int32 per input row of a whole matrix) is under 0.01 bit per weight
    fmt = GroupFormat("gptq", bits, group, zero_point=True)
    words = "GPTQ" if method == "gptq" else "AutoRound"
    label = f"{words} {bits}-bit, {_group_words(group)}" + ("" if sym else ", asymmetric")
    return Checkpoint(method, None, label, q.names("modules_to_not_convert"), fmt)


def _fp8(q: _Quant) -> Checkpoint:
    block = q.raw.get("weight_block_size")
    words = f"block {block[0]}x{block[1]}" if isinstance(block, list) and len(block) == 2 else ""
    label = "FP8 E4M3" + (f", {words} scales" if words else "")
    keep = q.names("modules_to_not_convert")
    return Checkpoint(str(q.raw["quant_method"]), "fp8_e4m3", label, keep)


def _modelopt(q: _Quant) -> Checkpoint:
    algo = q.raw.get("quant_algo")
    ids = {"FP8": "fp8_e4m3", "NVFP4": "nvfp4", "FP8_PB_WO": "fp8_e4m3"}
    if algo not in ids:
        raise q.error("quant_algo", "FP8 or NVFP4")
    keep = q.names("exclude_modules", "ignore")
    return Checkpoint("modelopt", ids[str(algo)], f"{algo} (NVIDIA ModelOpt)", keep)


def _compressed(q: _Quant) -> Checkpoint:
    groups = q.raw.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise q.error("config_groups", "an object of quantisation groups")
    # Every group must store weights the same way; mixed schemes are rare and not modelled.
    schemes = set()
    for group in groups.values():
        weights = group.get("weights") if isinstance(group, Mapping) else None
        if not isinstance(weights, Mapping):
            raise q.error("config_groups", "groups with a 'weights' object")
        schemes.add(
            (
                weights.get("num_bits"),
                weights.get("type", "int"),
                weights.get("group_size"),
                weights.get("symmetric", True),
            )
        )
    if len(schemes) != 1:
        raise q.error("config_groups", "one weight scheme for every group")
    bits, kind, group_size, symmetric = schemes.pop()
    keep = q.names("ignore")
    if kind == "float" and bits == 8:
        return Checkpoint("compressed-tensors", "fp8_e4m3", "FP8 E4M3 (compressed-tensors)", keep)
    if kind == "float" and bits == 4:
        return Checkpoint("compressed-tensors", "nvfp4", "NVFP4 (compressed-tensors)", keep)
    if kind == "int" and bits == 8 and not group_size:
        return Checkpoint("compressed-tensors", "int8", "INT8 W8A8 (compressed-tensors)", keep)
    if kind == "int" and bits in (4, 8):
        group = group_size if isinstance(group_size, int) and group_size > 0 else 0
        fmt = GroupFormat("compressed-tensors", bits, group, zero_point=symmetric is False)
        label = f"W{bits}A16 (compressed-tensors), {_group_words(group)}"
        return Checkpoint("compressed-tensors", None, label, keep, fmt)
    raise q.error("config_groups", "weights of 4 or 8 bits, int or float")


def _bitsandbytes(q: _Quant) -> Checkpoint:
    keep = q.names("llm_int8_skip_modules")
    if q.raw.get("load_in_8bit") is True:
        return Checkpoint("bitsandbytes", "int8", "bitsandbytes LLM.int8()", keep)
    if q.raw.get("load_in_4bit") is not True:
        raise q.error("load_in_4bit", "true (or load_in_8bit true)")
    kind = q.raw.get("bnb_4bit_quant_type", "fp4")
    return Checkpoint("bitsandbytes", "nf4", f"bitsandbytes 4-bit ({kind})", keep)


def _mxfp4(q: _Quant) -> Checkpoint:
    return Checkpoint("mxfp4", "mxfp4", "MXFP4 experts", q.names("modules_to_not_convert"))


# The MLX formats in the catalogue: (bits, group size) -> format id.
MLX_FORMATS = {
    **{(bits, 64): f"mlx_q{bits}" for bits in (2, 3, 4, 5, 6, 8)},
    (4, 32): "mlx_q4_g32",
    (5, 32): "mlx_q5_g32",
}


def _mlx(q: _Quant) -> Checkpoint:
    """mlx_lm.convert's "quantization": {"group_size": 64, "bits": 4, "mode": "affine"}."""
    mode = q.raw.get("mode", "affine")
    bits = q.integer("bits", 4, (2, 3, 4, 5, 6, 8))
    group = q.integer("group_size", 64, (16, 32, 64, 128))
    label = f"MLX {mode} {bits}-bit, group {group}"
    format_id = MLX_FORMATS.get((bits, group)) if mode == "affine" else None
    return Checkpoint(f"mlx {mode}", format_id, label)


_READERS = {
    "awq": _awq,
    "gptq": _gptq,
    "auto-round": _gptq,
    "fp8": _fp8,
    "fbgemm_fp8": _fp8,
    "modelopt": _modelopt,
    "compressed-tensors": _compressed,
    "bitsandbytes": _bitsandbytes,
    "mxfp4": _mxfp4,
}


def module_kept(module: str, patterns: Sequence[str]) -> bool:
    """Whether a Hugging Face module name matches one of a checkpoint's "leave unquantised"
    patterns: ``re:`` regexes (compressed-tensors), globs with ``*`` (ModelOpt, gpt-oss), or a
    name matched on whole dotted parts (transformers' ``key in name`` test, without matching
    ``gate`` inside ``gate_proj``)."""
    for pattern in patterns:
        if pattern.startswith("re:"):
            if re.match(pattern[3:], module):
                return True
        elif "*" in pattern:
            if fnmatchcase(module, pattern) or fnmatchcase(module, pattern + ".*"):
                return True
        elif f".{pattern}." in f".{module}.":
            return True
    return False
