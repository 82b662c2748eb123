"""``load``: a model (shipped name or file) -> a ready :class:`~sr_deploy.backends.base.Upscaler`,
on the fastest path this machine has for the requested precision, with the reason.

The decision is a pure function (:func:`decide`) of three things: the model artifact
(:class:`Artifact`: PyTorch weights, an ONNX file or a TensorRT engine, and its precision), the
machine (:class:`Facts`, gathered once by :func:`machine_facts`) and the request (backend,
precision, device). :data:`RANKING` lists every way to run a model, fastest first, with where
its order comes from (:data:`RANKING_SOURCE`). A route the request names but the machine lacks is
an error (:class:`BackendUnavailable`) that says what is missing; nothing falls back silently.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.base import Upscaler
from sr_deploy.backends.onnxrt import OrtUpscaler, cuda_provider, tensorrt_provider
from sr_deploy.backends.openvino import OvUpscaler, openvino_unavailable_reason, symmetric_int8_refusal_for
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.backends.trt import TrtUpscaler
from sr_deploy.backends.trt_metadata import read_metadata
from sr_deploy.errors import BackendUnavailable
from sr_deploy.hardware import BF16_EMULATED, tensorrt_unavailable_reason, this_cpu
from sr_deploy.models.weights import load_weights
from sr_deploy.models.zoo import RELEASED_DIR, resolve_weights
from sr_deploy.runtime.convert import CONVERTIBLE, INT8_BACKENDS, cache_root, convert
from sr_deploy.vocabulary import AUTO, PRECISIONS, check_choice, check_device
from sr_deploy.vocabulary import BACKENDS as ENGINES

BACKENDS = (AUTO, *ENGINES)
ENGINE_SUFFIXES = (".engine", ".plan")
DEFAULT_MODEL = "srresnet-x4"


@dataclass(frozen=True)
class Route:
    """One way to run a model.

    ``artifact``: what it runs from (``weights``, ``onnx`` or ``engine``) and ``source``: that file's
    precision when it differs from the compute ``precision`` (OpenVINO bf16 runs the fp32 ONNX).
    ``variant``: torch options, the ONNX Runtime execution provider, or the OpenVINO device.
    ``speedup``: throughput relative to torch fp32 on the same device, where measured (None: ranked
    by the order in :data:`RANKING_SOURCE`).
    """

    backend: str
    device: str
    precision: str
    artifact: str
    variant: str = ""
    speedup: float | None = None
    source: str | None = None

    @property
    def file_precision(self) -> str:
        """The precision of the file this route runs from (for weights: what they are run in)."""
        return self.source or self.precision

    @property
    def label(self) -> str:
        variant = self.variant.removesuffix("ExecutionProvider")
        return f"{self.backend} {self.precision} on {self.device}" + (f" ({variant})" if variant else "")


_TORCH_GPU = "channels_last+cudagraph"
_ORT_TRT, _ORT_CUDA, _ORT_CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
_OV_CPU = "CPU"

RANKING_SOURCE = (
    "CPU speedups: shipped srresnet-x4 at 1x3x128x128, p50 over torch fp32 (NCHW) in one bench run on a 2-core "
    "AMD EPYC (avx512_bf16 class: AVX-512 VNNI and BF16), benchmarks/results/amd-epyc-2c: OpenVINO bf16 2.86x, "
    "torch bf16+channels_last 2.29x, OpenVINO int8 (ort-cpu layout, budgeted) 1.85x, ONNX Runtime int8 (ort-cpu, "
    "budgeted) 1.65x, OpenVINO fp32 1.40x, OpenVINO fp16 1.36x, torch channels_last fp32 1.25x, ONNX Runtime "
    "fp32 1.21x, ONNX Runtime fp16 0.93x. Other CPUs order them differently (AVX2: no native bf16, u8s8 int8 "
    "saturates): `tune` measures the order on the machine itself. GPU order (issue 6): TensorRT, then ONNX "
    "Runtime CUDA, then torch CUDA; any GPU route before any CPU route."
)

#: Every route, fastest first: the first available one of the requested precision wins.
RANKING: tuple[Route, ...] = (
    *(Route("tensorrt", "cuda", p, "engine") for p in ("fp32", "fp16", "int8")),
    *(Route("onnxruntime", "cuda", p, "onnx", _ORT_TRT) for p in ("fp32", "fp16", "int8")),
    *(Route("onnxruntime", "cuda", p, "onnx", _ORT_CUDA) for p in ("fp32", "fp16")),
    *(Route("torch", "cuda", p, "weights", _TORCH_GPU) for p in ("fp32", "fp16", "bf16")),
    Route("openvino", "cpu", "bf16", "onnx", _OV_CPU, 2.86, source="fp32"),
    Route("torch", "cpu", "bf16", "weights", "channels_last", 2.29),
    Route("openvino", "cpu", "int8", "onnx", _OV_CPU, 1.85),
    Route("onnxruntime", "cpu", "int8", "onnx", _ORT_CPU, 1.65),
    Route("openvino", "cpu", "fp32", "onnx", _OV_CPU, 1.40),
    Route("openvino", "cpu", "fp16", "onnx", _OV_CPU, 1.36),
    Route("torch", "cpu", "fp32", "weights", "channels_last", 1.25),
    Route("onnxruntime", "cpu", "fp32", "onnx", _ORT_CPU, 1.21),
    Route("onnxruntime", "cpu", "fp16", "onnx", _ORT_CPU, 0.93),
)


@dataclass(frozen=True)
class Facts:
    """What this machine can run. Each ``str | None`` field is None when usable, else why not."""

    cuda: str | None
    tensorrt: str | None
    onnxruntime: str | None
    ort_providers: tuple[str, ...]
    cpu_bf16: bool
    openvino: str | None
    cpu_vnni: bool = True
    cpu_isa: str | None = None

    def unavailable(self, route: Route, artifact: Artifact | None = None) -> str | None:
        """Why ``route`` cannot run here, or cannot run ``artifact`` well (None: it can)."""
        if route.backend == "openvino":
            if self.openvino:
                return self.openvino
            if route.precision == "bf16" and not self.cpu_bf16:
                return BF16_EMULATED
            if route.precision == "int8" and artifact is not None and artifact.layout == "tensorrt":
                return symmetric_int8_refusal_for(self.cpu_vnni, self.cpu_isa)
        if route.backend == "tensorrt" and self.tensorrt:
            return self.tensorrt  # says why, CUDA included
        if route.device == "cuda" and self.cuda:
            return self.cuda
        if route.backend == "onnxruntime":
            if self.onnxruntime:
                return self.onnxruntime
            if route.variant not in self.ort_providers:
                return (f"onnxruntime has no {route.variant} (available: {', '.join(self.ort_providers)}); "
                        "GPU providers need onnxruntime-gpu")
            if route.variant == _ORT_TRT and self.tensorrt:
                return self.tensorrt
        if route.backend == "torch" and route.device == "cpu" and route.precision == "bf16" and not self.cpu_bf16:
            return BF16_EMULATED
        return None


@functools.cache
def machine_facts() -> Facts:
    """The facts of this machine (cached: they do not change while the process runs)."""
    import torch

    cuda = None if torch.cuda.is_available() else (
        f"torch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda or 'none'})"
    )
    tensorrt = tensorrt_unavailable_reason(builder=False)
    try:
        import onnxruntime

        ort, providers = None, tuple(onnxruntime.get_available_providers())
    except ImportError:
        ort, providers = "onnxruntime is not installed: pip install 'sr-deploy[cpu]' (or [gpu])", ()
    cpu = this_cpu()
    return Facts(cuda, tensorrt, ort, providers, cpu.bf16, openvino_unavailable_reason(), cpu.vnni, cpu.isa)


@dataclass(frozen=True)
class Artifact:
    """A model file: ``kind`` ``weights`` (.safetensors/.pt), ``onnx`` or ``engine`` (.engine/.plan);
    ``precision`` the file is fixed to (None for weights: they run in any float precision). For an
    int8 ONNX: its Q/DQ ``layout``, whether its weights are 7-bit (``seven_bit``, from the calibration's
    ``weight_bits``; a file without it counts as 8-bit, the conservative reading), the CPU instruction-set class it
    was validated on (``validated_isa``, with VNNI or not), the Y-PSNR drop measured there (dB) and the engine that
    measured it (``validated_engine``: onnxruntime or openvino)."""

    path: Path
    kind: str
    precision: str | None = None
    layout: str | None = None
    validated_isa: str | None = None
    validated_vnni: bool | None = None
    seven_bit: bool = False
    recorded_drop: float | None = None
    validated_engine: str | None = None

    @property
    def chooses_precision(self) -> bool:
        """Whether the precision this model runs in may be chosen (by an accuracy budget, or ``int8`` made on
        demand): weights and fp32 ONNX files; other files run as they are, held to the drop they record."""
        return self.kind == "weights" or (self.kind == "onnx" and self.precision == "fp32")


def int8_made_on_demand(artifact: Artifact, precision: str | None, device: str | None, backend: str) -> bool:
    """Whether ``precision`` int8 of ``artifact`` is made on first use (:func:`~sr_deploy.runtime.convert.convert_int8`)
    rather than asked of the file: weights or an fp32 ONNX, on the CPU, for ``auto`` or a CPU int8 backend."""
    return (precision == "int8" and artifact.chooses_precision and (device or "cpu") == "cpu"
            and backend in (AUTO, *INT8_BACKENDS))


def identify(model: str | os.PathLike[str] | None) -> Artifact:
    """Resolve a shipped model name or a file into an :class:`Artifact` (reads ONNX/engine metadata).

    ``None`` is the shipped default (:data:`DEFAULT_MODEL`). Raises FileNotFoundError or
    ValueError naming the file and the problem.
    """
    if model is None:
        default = RELEASED_DIR / f"{DEFAULT_MODEL}.safetensors"
        if not default.is_file():
            raise FileNotFoundError(
                f"no model given and the shipped default {DEFAULT_MODEL} is not installed ({default} is "
                "missing): pass a model file (.safetensors, .pt, .onnx, .engine)"
            )
        model = DEFAULT_MODEL
    path = resolve_weights(model)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} is not a file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        props, _ = onnx_metadata.sr_file_props(path)  # ModelFileError naming the file and the problem
        calibration = json.loads(props.get(onnx_metadata.CALIBRATION, "{}"))
        validated = calibration.get("validated_on", {})
        fp16 = json.loads(props.get(onnx_metadata.FP32_NODES, "{}"))  # an fp16 export within a budget records its drop
        drop = calibration.get("psnr_drop_db", fp16.get("ort_cpu_drop_db"))
        return Artifact(path, "onnx", props.get(onnx_metadata.PRECISION, "fp32"), calibration.get("layout"),
                        validated.get("isa"), validated.get("vnni"), calibration.get("weight_bits") == 7,
                        drop, validated.get("engine"))
    if suffix in ENGINE_SUFFIXES:
        return Artifact(path, "engine", read_metadata(path).precision)
    return Artifact(path, "weights")


@dataclass(frozen=True)
class Selection:
    """The decision: the ``route`` to run ``artifact`` on, ``reason`` (one human line), and every
    usable route of the request best first (``candidates``; ``load`` tries them in order)."""

    artifact: Artifact
    route: Route
    reason: str
    candidates: tuple[Route, ...]


_KINDS = {"weights": "PyTorch weights", "onnx": "an ONNX graph", "engine": "a TensorRT engine"}


def _make_hint(kind: str, precision: str) -> str:
    """How to get a ``kind`` file (weights, onnx, engine) in ``precision``."""
    if kind == "engine":
        return f"build a {precision} engine with `sr-deploy build MODEL.onnx -o MODEL.engine` from a {precision} ONNX"
    if kind == "onnx":
        step = {"fp32": "onnx", "fp16": "fp16", "int8": "int8"}.get(precision)
        return f"export it first with `sr-deploy export {step} ...`" if step else f"ONNX has no {precision} export"
    return "run from the .safetensors/.pt weights"


def _device_matches(route: Route, device: str | None) -> bool:
    return device is None or device.split(":")[0] == route.device


def decide(
    artifact: Artifact,
    facts: Facts,
    backend: str = AUTO,
    precision: str | None = None,
    device: str | None = None,
    convert: bool = False,
) -> Selection:
    """Choose the route for ``artifact`` on a machine with ``facts`` (pure: no I/O).

    ``precision``: None runs the file's own precision (fp32 for weights). ``device``: None,
    ``cpu``, ``cuda`` or ``cuda:N``. ``convert``: routes that run ONNX files or engines made from
    weights on first use (:mod:`sr_deploy.runtime.convert`) count as fitting a weights file. Raises
    ValueError for a request that makes no sense for the file, :class:`BackendUnavailable` when
    nothing requested can run here (saying what is missing).
    """
    check_choice(backend, BACKENDS, "backend")
    if precision is not None:
        check_choice(precision, PRECISIONS, "precision")
    if device is not None:
        check_device(device)
    want = precision or artifact.precision or "fp32"
    convertible = any(r.artifact == artifact.kind and r.precision == want and r.file_precision == artifact.precision
                      for r in RANKING)
    if artifact.precision is not None and want != artifact.precision and not convertible:
        raise ValueError(f"{artifact.path} holds {_KINDS[artifact.kind]} in {artifact.precision}; for {want}: "
                         f"{_make_hint('weights' if want == 'bf16' else artifact.kind, want)}")
    where = f"{backend if backend != 'auto' else 'any backend'} on {device or 'any device'}"
    requested = [r for r in RANKING if backend in ("auto", r.backend) and _device_matches(r, device)]
    routes = [r for r in requested if r.precision == want]
    if not routes:
        offered = sorted({r.precision for r in requested})
        raise BackendUnavailable(f"{want} is not offered by {where} (offered: {', '.join(offered) or 'nothing'})")

    def fits(r: Route) -> bool:
        if convert and artifact.kind == "weights" and r.file_precision in CONVERTIBLE.get(r.artifact, ()):
            return True
        return r.artifact == artifact.kind and artifact.precision in (None, r.file_precision)

    def why_not(r: Route) -> str | None:
        return facts.unavailable(r, artifact)

    fitting = [r for r in routes if fits(r)]
    usable = [r for r in fitting if why_not(r) is None]
    others = [r for r in routes if not fits(r) and why_not(r) is None]
    if not fitting:
        hints = "; or ".join(dict.fromkeys(f"{r.label}: {_make_hint(r.artifact, want)}" for r in others or routes))
        lead = "this machine can run " if others else "it needs another file: "
        who = "no backend runs" if backend == "auto" else f"the {backend} backend does not run"
        raise BackendUnavailable(f"{artifact.path} holds {_KINDS[artifact.kind]}; {who} those in {want}"
                                 f"{'' if device is None else ' on ' + device}; {lead}{hints}")
    if not usable:
        missing = "; ".join(f"{r.label}: {why_not(r)}" for r in fitting)
        instead = f"; this machine can run {others[0].label}: {_make_hint(others[0].artifact, want)}" if others else ""
        raise BackendUnavailable(f"cannot run {artifact.path} ({want}) with {where} here: {missing}{instead}")
    best = usable[0]
    reason = [f"{best.label}: the fastest {want} route for this {artifact.kind} file on this machine"]
    if best.artifact != artifact.kind:
        reason.append(f"runs a {best.file_precision} {best.artifact} made from the weights on first use (cached)")
    if best.speedup is not None:
        reason.append(f"measured {best.speedup:.2f}x torch fp32 on the reference CPU")
    skipped = [f"{r.label} ({why_not(r)})" for r in fitting[: fitting.index(best)]]
    if skipped:
        reason.append("skipped: " + "; ".join(skipped))
    expectation = int8_expectation(artifact, facts) if best.precision == "int8" and best.device == "cpu" else None
    if expectation:
        reason.append(expectation)
    faster = [r for r in others if routes.index(r) < routes.index(best)]
    if faster:
        quicker = faster[0]
        made = artifact.kind == "weights" and quicker.file_precision in CONVERTIBLE.get(quicker.artifact, ())
        hint = (f"backend {quicker.backend} makes its {quicker.file_precision} {quicker.artifact} from the weights on "
                "first use (cached)" if made else _make_hint(quicker.artifact, want))
        reason.append(f"faster here: {quicker.label}, {hint}")
    return Selection(artifact, best, "; ".join(reason), tuple(usable))


#: Plain int8 of the shipped srresnet-x4 (entropy calibration on the 19 of 40 T91 images drawn large enough), Set5
#: Y-PSNR drop (dB) of the same files on ONNX Runtime on an AVX2 CPU (no VNNI; emulated, tests/emulate_cpu.sh) and
#: an AVX-512 VNNI one:
#: benchmarks/results/{qemu-epyc-milan-emulated-on-amd-epyc-2c,amd-epyc-2c}/int8_calibration.md.
CROSS_CLASS_DROPS = {"8-bit u8s8": (2.090, 0.113), "7-bit u8s8": (0.122, 0.122), "s8s8": (0.100, 0.100)}


def int8_expectation(artifact: Artifact, facts: Facts) -> str | None:
    """What accuracy to expect from the int8 ``artifact`` on this CPU when it was validated on another CPU class
    (None when the classes match or the file records none): a WARNING where its arithmetic saturates here and did
    not there (8-bit weights with uint8 activations on a CPU without VNNI), else a NOTE that the recorded drop
    should hold (int32-exact arithmetic on both classes, as measured between AVX2 and AVX-512 VNNI)."""
    if artifact.validated_isa in (None, facts.cpu_isa):
        return None
    recorded = "not recorded" if artifact.recorded_drop is None else f"{artifact.recorded_drop:.3f} dB"
    head = (f"this int8 model was validated on a {artifact.validated_isa} CPU (Y-PSNR drop {recorded}), this one is "
            f"{facts.cpu_isa}")
    kind = "s8s8" if artifact.layout == "tensorrt" else "7-bit u8s8" if artifact.seven_bit else "8-bit u8s8"
    avx2, vnni = CROSS_CLASS_DROPS[kind]
    measured = (f"shipped srresnet-x4, one file: {avx2:.3f} dB on AVX2, {vnni:.3f} dB on AVX-512 VNNI with ONNX "
                "Runtime, OpenVINO alike")
    if kind == "8-bit u8s8" and not facts.cpu_vnni and artifact.validated_vnni is not False:
        return (f"WARNING: {head}: expect about {avx2 - vnni:.1f} dB more loss here: 8-bit weights with uint8 "
                f"activations saturate on CPUs without VNNI ({measured}); re-export it on this CPU (it then "
                "chooses 7-bit weights) to get the accuracy it was validated with")
    if kind == "8-bit u8s8" and facts.cpu_vnni and artifact.validated_vnni is False:
        return (f"NOTE: {head}: expect at most its recorded drop: it was measured with the saturating arithmetic of a "
                f"CPU without VNNI, which this one does not have ({measured}); re-export it here to measure it")
    if kind == "8-bit u8s8" and artifact.validated_vnni is not None:  # here: the same VNNI on both sides
        why = ("is the same on both classes (both have VNNI, whose products accumulate exactly in int32)"
               if facts.cpu_vnni else f"is the same on both classes (neither has VNNI: both saturate alike; "
               f"{measured})")
    elif kind == "8-bit u8s8":
        why = f"depends on VNNI, which the file does not record for its CPU ({measured})"
    else:
        why = f"accumulates exactly in int32 on both classes ({measured})"
    return (f"NOTE: {head}: expect its recorded drop: its {kind} arithmetic {why}, not measured on this CPU; "
            "re-export it here to measure it")


def _cuda_index(device: str | None) -> int:
    return int(device.split(":")[1]) if device and ":" in device else 0


def open_route(
    route: Route, artifact: Artifact, device: str | None = None, log: Callable[[str], None] | None = None
) -> Upscaler:
    """Construct the upscaler for ``route`` over ``artifact`` (``device``: ``cuda:N`` picks the GPU).
    Torch options come from ``route.variant`` (``channels_last``, ``cudagraph``, joined by ``+``). A
    route that runs another kind of file than ``artifact`` (weights) converts it first, once
    (:func:`~sr_deploy.runtime.convert.convert`; ``log`` hears about it)."""
    if route.artifact != artifact.kind:
        artifact = Artifact(convert(artifact.path, route.artifact, route.file_precision, log), route.artifact,
                            route.file_precision)
    if route.backend == "torch":
        net, desc = load_weights(artifact.path)
        options = route.variant.split("+")
        on_cuda = route.device == "cuda"
        return TorchUpscaler(net, desc, device=(device or "cuda") if on_cuda else "cpu", precision=route.precision,
                             channels_last="channels_last" in options, cuda_graphs="cudagraph" in options)
    if route.backend == "onnxruntime":
        index = _cuda_index(device)
        providers: list[str | tuple[str, dict[str, str]]] = [_ORT_CPU]
        if route.variant in (_ORT_CUDA, _ORT_TRT):
            providers.insert(0, cuda_provider(index))
        if route.variant == _ORT_TRT:
            providers.insert(0, tensorrt_provider(cache_root() / "ort-tensorrt", index))
        return OrtUpscaler(artifact.path, providers=providers)
    if route.backend == "openvino":
        return OvUpscaler(artifact.path, precision=route.precision, cache_dir=cache_root() / "openvino")
    return TrtUpscaler(artifact.path, device=_cuda_index(device))
