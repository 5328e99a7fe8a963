"""What every engine profile answers, and the flow that turns its answers into an estimate.

An engine decides more of the memory than the model does: how long a context it allocates by
default, for how many sequences, where the token embeddings live, how large its scratch buffers
are and what each GPU loses to the CUDA context. Each engine module subclasses :class:`Engine`
and overrides what it does differently; nothing outside its module asks which engine it is.

The interface, in the order a request meets it:

- ``release(version)``: the release whose defaults apply (its history is data, with sources);
- ``default_context``, ``resolve_options``, ``choose_batch``: what that release defaults to for
  a model and GPUs;
- ``loads``, ``kv_type``, ``expert_padding``: which formats and KV types it loads, and how;
- ``place``: how it places layers, and what it keeps in CPU RAM;
- ``buffer_bytes``, ``activation_bytes``, ``runtime_bytes``: its per-device buffers and
  profiling pass;
- ``finish``: figures and notes of its own (vLLM's reserve).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from math import ceil
from types import MappingProxyType
from typing import Any, Generic, TypeVar, cast

from calc.architecture import Architecture
from calc.breakdown import Components, Device, DeviceEstimate, Estimate
from calc.checkpoint import Checkpoint
from calc.engines.history import MODEL_MAX, History, Release
from calc.formats import StorageType, WeightFormat
from calc.kv_cache import MlaCache, kv_cache_bytes
from calc.layout import ExpertPadding, WeightLayout
from calc.placement import KvBytes, Offload, Placement, place_layers
from calc.plan import MAX_CONTEXT, Default, EngineOptions, Plan
from calc.records import record, replace
from calc.speed import Backend, runtime_bytes
from calc.vision import encode_buffer_bytes

BF16 = 2  # bytes per activation value
FP32 = 4  # bytes per logit (engines upcast logits before sampling)


@record
class Constant:
    """A number the estimator relies on, for the methodology page."""

    name: str
    value: str
    used_for: str
    source: str


R = TypeVar("R", bound=Release)
Opt = TypeVar("Opt", bound=EngineOptions)

# The catalogue's f16 KV cache type, for engines that fall back to it.
F16Lookup = Callable[[], StorageType]


class Engine(Generic[R, Opt]):
    """An inference engine's defaults and allocation rules. Subclasses set the attributes and
    override the methods where the engine differs."""

    id: str
    name: str
    source: str
    history: History[R]
    default_weights: str
    default_kv: str
    accepts: tuple[str, ...] = ()  # weight-format families it loads; empty: any
    # A checkpoint format the engine loads as a file of its own: asked id -> its id, and why.
    weight_files: Mapping[str, tuple[str, str]] = MappingProxyType({})
    weights_only = False  # theory: parameters x bytes and nothing else
    loads_checkpoints = False  # reads Hugging Face files in the format their config.json names
    loads_vision = True  # a multimodal model's vision tower loads unless turned off
    # the setting that puts N layers on the GPUs ("-ngl", "num_gpu"); "": layers are not moved
    layers_option = ""
    own_placement = "the default"  # the words for the placement the engine chooses itself
    vision_value_bytes = BF16  # the image encoder's activations
    kv_padding = 1  # the KV cache is allocated in steps of this many tokens per sequence
    # Host time per generated token and sequence outside the GPU step (sampling, the server
    # loop): 0 where the backends' constants were fitted on this engine's own figures
    # (llama-bench), fitted by scripts/calibrate_speed.py for the others.
    token_seconds = 0.0
    bare_step = False  # its published figures time the GPU step alone (llama-bench)
    # its own constants for a backend where its kernels differ from llama.cpp's (MLX on Metal),
    # fitted by scripts/calibrate_speed.py on its own figures
    backends: Mapping[str, Backend] = MappingProxyType({})
    embeddings_on_host = False
    mentions_flash_default = False  # the defaults note names the flash-attention default
    constants: tuple[Constant, ...] = ()

    # -- releases and defaults ----------------------------------------------------------------

    def release(self, version: str | None) -> R:
        """The release whose defaults hold for ``version`` (the newest modelled when None)."""
        return self.history.at(version)

    def release_of(self, plan: Plan) -> R:
        return cast(R, plan.release)

    def options_of(self, plan: Plan) -> Opt:
        return cast(Opt, plan.options)

    def default_context(self, release: R, arch: Architecture, devices: Sequence[Device]) -> int:
        if release.default_context == MODEL_MAX:
            return min(arch.max_position_embeddings or MAX_CONTEXT, MAX_CONTEXT)
        return release.default_context

    def parallel_problem(self, arch: Architecture, gpus: int) -> str | None:
        """Why the engine cannot run ``arch`` over ``gpus`` GPUs, or None where it can."""
        return None

    def pipeline_split(
        self, plan: Plan, layout: WeightLayout, below: int
    ) -> tuple[int, int] | None:
        """The fewest GPUs, fewer than ``below``, on which the engine runs the plan by splitting
        the layers into pipeline stages as well: (tensor parallel, pipeline stages); None where
        the engine has no pipeline split or it does not help."""
        return None

    def default_weights_for(self, release: R, arch: Architecture) -> str:
        """The weight format the release loads when not told."""
        return self.default_weights

    def uses_checkpoint(self, release: R, checkpoint: Checkpoint) -> bool:
        """Whether, when not told a format, the release loads the checkpoint as stored."""
        return self.loads_checkpoints

    def flash_default(self, release: R, arch: Architecture) -> bool:
        """Whether the release runs this model with flash attention when not told."""
        return release.flash_attention

    def resolve_options(self, plan: Plan, asked: Any) -> tuple[EngineOptions, tuple[Default, ...]]:
        """The engine's own settings from the request ``asked``, and the defaults it applied."""
        return EngineOptions(), ()

    def fit(
        self, plan: Plan, asked: Any, layout: Callable[[], WeightLayout]
    ) -> tuple[Plan, tuple[str, ...]]:
        """The plan as the engine adjusts it to the GPUs by itself (llama.cpp's --fit), with
        notes that say what changed; unchanged by default."""
        return plan, ()

    def choose_batch(self, plan: Plan, layout: Callable[[], WeightLayout]) -> tuple[int, str]:
        """Sequences served at once when the request does not say, and the words for it."""
        batch = plan.release.default_batch
        return batch, f"{batch} sequence(s)"

    def describe(self, release: R) -> dict[str, str]:
        """A release's defaults in words, for the table of releases."""
        context = release.default_context
        return {
            "date": release.date,
            "context": "the model's maximum" if context == MODEL_MAX else f"{context:,}",
            "sequences": str(release.default_batch),
            "flash_attention": "on" if release.flash_attention else "off",
            "layers": "all",
            "kv_layout": "every token of every layer",
            "buffers": "",
            "mla_cache": "latent",
        }

    # -- formats ------------------------------------------------------------------------------

    def loads(self, weights: WeightFormat) -> bool:
        return (weights.loadable or self.weights_only) and (
            not self.accepts or weights.family in self.accepts
        )

    def kv_types(self, release: R) -> tuple[str, ...]:
        """The KV cache types (storage ids) the release can store its cache in; empty: any."""
        return ()

    def kv_type(
        self, kv_format: StorageType, flash_attention: bool, f16: F16Lookup
    ) -> tuple[StorageType, str | None]:
        """The KV cache type the engine really uses for the one asked, and a note if it
        differs."""
        return kv_format, None

    def expert_padding(self, weights_id: str, ranks: int) -> ExpertPadding | None:
        return None

    # -- memory -------------------------------------------------------------------------------

    def kv_step(self, plan: Plan) -> int:
        """The KV cache is allocated in steps of this many tokens per sequence."""
        return self.kv_padding

    def serving(self, plan: Plan, estimate: Estimate) -> tuple[int, int] | None:
        """A server's capacity: the tokens its KV cache holds and the sequences it runs at once;
        None for an engine that is not a server (one program, one batch)."""
        return None

    def padded_context(self, plan: Plan, context: int | None = None) -> int:
        """The plan's context (or ``context``) rounded up to the engine's KV step."""
        step = self.kv_step(plan)
        return ceil((plan.context if context is None else context) / step) * step

    def mla_cache(self, plan: Plan) -> MlaCache:
        return "latent"

    def keeps_window(self, plan: Plan) -> bool:
        """Whether sliding-window layers keep only their window."""
        return True

    def sliding_cells(self, plan: Plan) -> int | None:
        """Cells one sliding-window layer holds for all sequences together, where the engine
        sizes that cache as a whole; None: the window per sequence."""
        return None

    def recurrent_types(self, plan: Plan) -> tuple[int, int]:
        """Bytes per value of the conv state and of the SSM state. llama.cpp keeps both in
        F32 whatever the KV cache type (src/llama-model.cpp create_memory: "GGML_TYPE_F32,
        GGML_TYPE_F32" for the recurrent memory's r and s)."""
        return FP32, FP32

    def vision_share(self, plan: Plan) -> float:
        """The share of the vision tower (and its buffer) GPU 0 holds; 1: all of it."""
        return 1.0

    def vision_bytes(self, plan: Plan, layout: WeightLayout) -> int:
        """The vision tower's weights and the buffer that encodes one image, where loaded."""
        if not plan.vision:
            return 0
        buffer = encode_buffer_bytes(plan.arch, self.vision_value_bytes)
        return ceil((layout.vision_bytes + buffer) * self.vision_share(plan))

    def recurrent_share(self, plan: Plan) -> float:
        """The share of each layer's recurrent state one GPU holds (tensor parallel: 1/N)."""
        return 1.0

    def recurrent_bytes(self, plan: Plan, layers: Sequence[int], share: float = 1.0) -> int:
        """Recurrent state of these layers: one cell per sequence (llama.cpp's
        llama_memory_recurrent sizes ``n_seq_max`` cells), whatever the context."""
        arch, mixer = plan.arch, plan.arch.recurrent
        if mixer is None:
            return 0
        conv, state = self.recurrent_types(plan)
        per_layer = mixer.conv_values * conv + mixer.state_values * state
        count = sum(1 for i in layers if arch.is_recurrent(i))
        return ceil(per_layer * count * self.recurrent_cells(plan) * share)

    def recurrent_cells(self, plan: Plan) -> int:
        """Sequences that keep a recurrent state: the plan's sequences."""
        return plan.batch

    def kv_bytes(self, plan: Plan, layers: Sequence[int], share: float = 1.0) -> int:
        """The per-layer cache of these layers: KV cache and, for hybrid models, recurrent
        state (split apart again when the estimate is assembled)."""
        return self.attention_kv_bytes(plan, layers, share) + self.recurrent_bytes(
            plan, layers, share
        )

    def attention_kv_bytes(self, plan: Plan, layers: Sequence[int], share: float = 1.0) -> int:
        full = kv_cache_bytes(
            plan.arch,
            context=self.padded_context(plan),
            sequences=plan.batch,
            storage=plan.kv_format,
            layers=layers,
            sliding_window_cache=self.keeps_window(plan),
            mla_cache=self.mla_cache(plan),
            sliding_cells=self.sliding_cells(plan),
        )
        return ceil(full * share)

    def kv_of(self, plan: Plan) -> KvBytes:
        """The plan's KV cache bytes for some layers at a share of the heads."""

        def kv(layers: Sequence[int], share: float) -> int:
            return self.kv_bytes(plan, layers, share)

        return kv

    def offload(self, plan: Plan) -> Offload:
        """The reader's placement switches (-ngl and the like); none by default."""
        return Offload()

    def place(self, plan: Plan, layout: WeightLayout) -> Placement:
        return place_layers(
            plan.arch,
            layout,
            plan.devices,
            self.kv_of(plan),
            embeddings_on_host=self.embeddings_on_host,
            offload=self.offload(plan),
        )

    def buffer_bytes(self, plan: Plan, placement: Placement) -> int:
        """The compute buffer of one GPU that holds layers."""
        return 0

    def activation_bytes(self, plan: Plan, placement: Placement) -> list[int]:
        """Per GPU: the compute buffer where it holds layers or the output layer."""
        buffer = self.buffer_bytes(plan, placement)
        last = len(placement.devices) - 1
        return [buffer if d.layers or d.index == last else 0 for d in placement.devices]

    def runtime_bytes(self, plan: Plan, device: Device) -> int:
        """Memory on one GPU outside the engine's own tensors: its backend's context (CUDA's
        context, HIP's; nothing on Metal), and what the engine adds (vLLM's CUDA graphs)."""
        return runtime_bytes(device, plan.backend)

    def finish(
        self, plan: Plan, devices: Sequence[DeviceEstimate]
    ) -> tuple[dict[str, Any], list[str]]:
        """Engine-specific figures for the JSON, and notes."""
        return {}, []

    def estimate(self, plan: Plan, layout: WeightLayout) -> Estimate:
        """Place the weights and KV cache, add each GPU's buffers and runtime."""
        notes = _common_notes(self, plan, layout)
        placement = split_recurrent(self, plan, self.place(plan, layout))
        placement = add_vision(self, plan, layout, placement)
        notes += placement.notes
        devices = tuple(
            replace(
                d,
                components=replace(
                    d.components, activations=a, runtime=self.runtime_bytes(plan, d.device)
                ),
            )
            for d, a in zip(placement.devices, self.activation_bytes(plan, placement), strict=True)
        )
        if self.embeddings_on_host:
            notes.append(f"{self.name} keeps the token embeddings in CPU RAM")
        details, more = self.finish(plan, devices)
        if plan.vision and self.loads_checkpoints:
            # vLLM and transformers load the tower with the model: their "model weights" log
            # lines include it, so measurements of weights add this back
            share = layout.vision_bytes * self.vision_share(plan)
            details = {
                **details,
                "vision_weights_bytes": [
                    ceil(share) if d.components.vision else 0 for d in devices
                ],
            }
        return estimate_of(plan, layout, devices, placement.host, (*notes, *more), details)


def add_vision(
    engine: Engine[Any, Any], plan: Plan, layout: WeightLayout, placement: Placement
) -> Placement:
    """The vision tower and its image buffer: on the first GPU, or a share on each where the
    engine splits it (vLLM's tensor parallel)."""
    vision = engine.vision_bytes(plan, layout)
    if not vision:
        return placement
    split = engine.vision_share(plan) < 1.0
    devices = tuple(
        replace(d, components=replace(d.components, vision=vision)) if split or d.index == 0 else d
        for d in placement.devices
    )
    return replace(placement, devices=devices)


def split_recurrent(engine: Engine[Any, Any], plan: Plan, placement: Placement) -> Placement:
    """Move hybrid models' recurrent state out of the per-layer cache into its own part."""
    if plan.arch.recurrent is None:
        return placement
    share = engine.recurrent_share(plan)
    devices = []
    placed: set[int] = set()
    for d in placement.devices:
        state = engine.recurrent_bytes(plan, d.layers, share)
        placed.update(d.layers)
        c = replace(d.components, kv_cache=d.components.kv_cache - state, recurrent_state=state)
        devices.append(replace(d, components=c))
    host_layers = [i for i in range(plan.arch.num_layers) if i not in placed]
    state = engine.recurrent_bytes(plan, host_layers) if placement.host.kv_cache else 0
    host = replace(placement.host, kv_cache=placement.host.kv_cache - state, recurrent_state=state)
    return replace(placement, devices=tuple(devices), host=host)


def estimate_of(
    plan: Plan,
    layout: WeightLayout,
    devices: Sequence[DeviceEstimate],
    host: Components,
    notes: Sequence[str],
    details: Mapping[str, Any] | None = None,
) -> Estimate:
    """The estimate of ``plan`` with these per-GPU parts."""
    return Estimate(
        engine=plan.engine.id,
        weights_format=plan.weights.id,
        kv_format=plan.kv_format.id,
        context=plan.context,
        batch=plan.batch,
        parameters=layout.parameters,
        devices=tuple(devices),
        host=host,
        notes=tuple(notes),
        details=details or {},
    )


def _common_notes(engine: Engine[Any, Any], plan: Plan, layout: WeightLayout) -> list[str]:
    notes = []
    padding = layout.padding
    if padding is not None and plan.arch.moe is not None:
        notes.append(
            f"{engine.name} pads each routed expert for its MoE kernel: the intermediate size per "
            f"GPU to a multiple of {padding.intermediate}, the hidden size to {padding.hidden}"
        )
    context = plan.context
    padded = engine.padded_context(plan)
    if padded != context:
        notes.append(
            f"{engine.name} allocates the KV cache in steps of {engine.kv_step(plan)} tokens: "
            f"{context} becomes {padded} per sequence"
        )
    limit = plan.arch.max_position_embeddings
    if limit and context > limit:
        notes.append(f"context {context} exceeds the model's max_position_embeddings ({limit})")
    return notes


def widest_mlp(arch: Architecture) -> int:
    """The largest intermediate width a token passes through in one layer."""
    if arch.moe is None:
        return arch.intermediate_size
    routed = arch.moe.experts_per_token * arch.moe.expert_intermediate_size
    dense = arch.intermediate_size if not all(arch.moe.moe_layers) else 0
    return max(dense, routed + arch.moe.shared_intermediate_size)
