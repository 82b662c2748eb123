"""Where the ``tensorrt`` int8 layout puts its Q/DQ pairs: TensorRT's placement rules as functions of ONNX
node patterns (never of layer names), so they hold for any convolutional SR network (SRResNet, RRDBNet/ESRGAN,
Real-ESRGAN compact, the convolutions of SwinIR).

The rules are TensorRT's "Q/DQ Layer-Placement Recommendations" (TensorRT Developer Guide, "Working with
Quantized Types" > "Explicit Quantization",
https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html),
one function each:

- :func:`conv_rule`: "quantize all inputs of weighted operations" (the activation input and the weights of
  every Conv; biases stay float, TensorRT quantizes them itself) and "by default, do not quantize the outputs
  of weighted operations": the next layer's input Q is fused into the convolution's epilogue.
- :func:`conv_epilogue` (activations): TensorRT fuses a convolution with the activation that follows it
  (ReLU, PReLU, LeakyReLU) and with a scaling by a constant; a Q/DQ pair between them would split the fusion,
  so there is none: a Q/DQ pair goes after the activation, on the next layer's input.
- :func:`add_rule` (residual Add): TensorRT fuses an element-wise addition into the epilogue of the
  convolution that produces one of its inputs, and the precision of the *other* input (the identity branch)
  decides the fused kernel's output precision ("quantize the residual input in skip connections"; the guide's
  figures show an extra Q/DQ pair on the convolution branch forcing the addition apart from the convolution).
  So only the identity input gets a Q/DQ pair. NVIDIA Model Optimizer (``modelopt.onnx.quantization``) places
  them the same way.
- :func:`move_across_data_movement` (PixelShuffle = ``DepthToSpace``, PixelUnshuffle = ``SpaceToDepth``): data
  movement commutes with per-tensor quantization, and TensorRT propagates DQ forward and Q backward across such
  layers; a pair that would sit on their output is put on their input once (one pair for all the consumers,
  not one per consumer), so the producer's epilogue writes int8 and the shuffle moves int8.
- :func:`concat_rule` (RRDB dense blocks): a concatenation stays int8 only when all its inputs are quantized
  with one scale (otherwise TensorRT requantizes each input): every input of a Concat that feeds a quantized
  layer gets a pair, and all the tensors joined by Concats share one scale (:attr:`Placement.shared_scales`).

A *fusion group* is what TensorRT runs as one int8 kernel: a quantized Conv, the activations and scaling fused
into its epilogue and the residual Add it absorbs. Groups are the unit of exclusion of the accuracy budget
(:mod:`sr_deploy.export.sensitivity`): leaving a convolution in float removes its input and weight pairs and
the identity pair of the Add fused into it, and nothing of its neighbours.

Not covered (left float by this layout): MatMul/Gemm (SwinIR's attention and MLPs), ConvTranspose, and Adds
whose inputs come from no convolution (nothing to fuse them into).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import onnx

#: Activations TensorRT fuses into the preceding convolution.
ACTIVATIONS = frozenset({"Relu", "PRelu", "LeakyRelu"})
#: Element-wise ops fused into a convolution's epilogue when their other operand is a constant (RRDB's 0.2).
SCALING = frozenset({"Mul", "Div"})
#: Pure data movement: per-tensor Q/DQ commutes with it.
DATA_MOVEMENT = frozenset({"DepthToSpace", "SpaceToDepth"})
#: The op types whose tensors the placement can quantize (their inputs and outputs are calibrated).
CALIBRATED_OP_TYPES = ("Conv", "Add", "Concat", *sorted(DATA_MOVEMENT))


@dataclass(frozen=True)
class Site:
    """One Q/DQ pair on input ``index`` (tensor ``tensor``) of node ``node``; ``rule`` placed it and ``via`` are
    the data-movement nodes it was moved across (from their output to their input)."""

    node: str
    index: int
    tensor: str
    rule: str
    via: tuple[str, ...] = ()


@dataclass
class Placement:
    """Every Q/DQ pair of a model (``sites``), the Convs with int8 weights (``weights``), the tensors that must
    share one scale (``shared_scales``) and the fusion groups (``groups``: quantized Conv -> the nodes TensorRT
    fuses with it into one int8 kernel, the Conv first)."""

    sites: list[Site] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    shared_scales: list[tuple[str, ...]] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def sites_on(self, node: str) -> list[Site]:
        """The pairs on ``node``'s inputs."""
        return [s for s in self.sites if s.node == node]


class Graph:
    """Producer / consumer / constant look-ups of an ONNX graph (nodes by name, in graph order)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.nodes = list(model.graph.node)
        self.node = {n.name: n for n in self.nodes}
        self.order = {n.name: i for i, n in enumerate(self.nodes)}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for name in n.input:
                self.consumers.setdefault(name, []).append(n)
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.constants = set(self.initializers) | {o for n in self.nodes if n.op_type == "Constant" for o in n.output}
        self.outputs = {o.name for o in model.graph.output}

    def single_use(self, tensor: str) -> bool:
        """Whether ``tensor`` feeds exactly one node and is no graph output (so it can stay inside a kernel)."""
        return len(self.consumers.get(tensor, [])) == 1 and tensor not in self.outputs


def quantizable_convs(g: Graph) -> list[str]:
    """Convs whose weights are a 4-D initializer (what the layout quantizes), in graph order."""
    return [n.name for n in g.nodes if n.op_type == "Conv" and len(n.input) > 1
            and n.input[1] in g.initializers and len(g.initializers[n.input[1]].dims) == 4]


def conv_rule(g: Graph, conv: str) -> Site:
    """Quantize all inputs of a weighted operation: the pair on the Conv's activation input (the weights are
    quantized per output channel by the writer), none on its output."""
    return Site(conv, 0, g.node[conv].input[0], "conv-input")


def epilogue_input(g: Graph, node: onnx.NodeProto) -> str | None:
    """The data input of ``node`` when TensorRT fuses it into a preceding convolution's epilogue (an activation
    of :data:`ACTIVATIONS`, or a :data:`SCALING` op whose other operand is a constant), else None."""
    if node.op_type in ACTIVATIONS:
        return node.input[0]
    if node.op_type in SCALING and len(node.input) == 2:
        if node.input[1] in g.constants:
            return node.input[0]
        if node.op_type == "Mul" and node.input[0] in g.constants:
            return node.input[1]
    return None


def conv_epilogue(g: Graph, tensor: str) -> list[onnx.NodeProto] | None:
    """The nodes TensorRT fuses into one convolution kernel that ends in ``tensor``: the Conv, then a chain of
    activations and scalings by a constant (:func:`epilogue_input`), every tensor inside the chain used once.
    None when ``tensor`` is not such a chain's end. No Q/DQ goes inside a chain (none between a Conv and its
    PReLU / LeakyReLU / ReLU)."""
    chain: list[onnx.NodeProto] = []
    t = tensor
    while (node := g.producer.get(t)) is not None:
        if chain and not g.single_use(t):
            return None
        if node.op_type == "Conv":
            return [node, *reversed(chain)]
        source = epilogue_input(g, node)
        if source is None:
            return None
        chain.append(node)
        t = source
    return None


def fused_branch(g: Graph, add: onnx.NodeProto) -> tuple[int, list[onnx.NodeProto]] | None:
    """The input of a two-input Add that TensorRT fuses into a convolution (index, the epilogue chain), or None.
    With a convolution on both inputs, the later one in graph order (the residual branch of a block whose
    identity is an earlier convolution's output)."""
    if add.op_type != "Add" or len(add.input) != 2:
        return None
    branches = [(i, chain) for i, t in enumerate(add.input)
                if g.single_use(t) and (chain := conv_epilogue(g, t)) is not None]
    if not branches:
        return None
    return max(branches, key=lambda b: g.order[b[1][0].name])


def add_rule(g: Graph, add: str, quantized: Collection[str]) -> list[Site]:
    """Quantize the identity input of a residual Add, not the input its convolution branch produces, so the
    Add fuses into that convolution; nothing when that convolution is left float (the Add then runs with it in
    float) or when the identity is a constant (a bias)."""
    node = g.node[add]
    branch = fused_branch(g, node)
    if branch is None or branch[1][0].name not in quantized:
        return []
    other = 1 - branch[0]
    if node.input[other] in g.constants:
        return []
    return [Site(add, other, node.input[other], "add-identity")]


def move_across_data_movement(g: Graph, site: Site) -> Site:
    """A pair on the output of DepthToSpace / SpaceToDepth (chains of them too) moved onto their input: data
    movement commutes with a per-tensor scale, and the producer's epilogue can then write int8."""
    via = list(site.via)
    while (node := g.producer.get(site.tensor)) is not None and node.op_type in DATA_MOVEMENT:
        via.append(node.name)
        site = Site(node.name, 0, node.input[0], site.rule, tuple(via))
    return site


def concat_rule(g: Graph, concat: str) -> list[Site]:
    """A pair on every non-constant input of a Concat (they share one scale with its output: see
    :func:`shared_scale_groups`), so the concatenation runs on int8 data."""
    node = g.node[concat]
    return [Site(concat, i, t, "concat-input") for i, t in enumerate(node.input) if t not in g.constants]


def shared_scale_groups(g: Graph, concats: Iterable[str]) -> list[tuple[str, ...]]:
    """Tensors joined by the ``concats`` (their inputs and outputs), merged where they overlap: each group is
    quantized with one scale (the largest range in it)."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t

    for c in concats:
        node = g.node[c]
        tensors = [t for t in (*node.input, node.output[0]) if t not in g.constants]
        for t in tensors[1:]:
            parent[find(t)] = find(tensors[0])
    groups: dict[str, list[str]] = {}
    for t in parent:
        groups.setdefault(find(t), []).append(t)
    return [tuple(sorted(members)) for members in groups.values()]


def place(model: onnx.ModelProto, exclude: Collection[str] = ()) -> Placement:
    """The ``tensorrt`` layout's Q/DQ placement for ``model``, with the Convs in ``exclude`` (and so the
    fusion groups they head) left float."""
    g = Graph(model)
    quantized = [c for c in quantizable_convs(g) if c not in set(exclude)]
    sites = [conv_rule(g, c) for c in quantized]
    adds = [n.name for n in g.nodes if n.op_type == "Add"]
    sites += [s for a in adds for s in add_rule(g, a, quantized)]
    # Concats read by a pair (after data movement) get pairs on their inputs, with one scale
    concats: list[str] = []
    pending = list(sites)
    while pending:
        producer = g.producer.get(move_across_data_movement(g, pending.pop()).tensor)
        if producer is not None and producer.op_type == "Concat" and producer.name not in concats:
            concats.append(producer.name)
            new = concat_rule(g, producer.name)
            sites += new
            pending += new
    moved: dict[tuple[str, int], Site] = {}
    for site in map(lambda s: move_across_data_movement(g, s), sites):
        moved.setdefault((site.node, site.index), site)  # one pair per input, whoever asked for it
    placement = Placement(sorted(moved.values(), key=lambda s: (g.order[s.node], s.index)), quantized,
                          shared_scale_groups(g, concats))
    for conv in quantized:
        out = g.node[conv].output[0]
        chain = [conv]
        while g.single_use(out) and epilogue_input(g, nxt := g.consumers[out][0]) == out:
            chain.append(nxt.name)
            out = nxt.output[0]
        placement.groups[conv] = chain
    for a in adds:
        branch = fused_branch(g, g.node[a])
        if branch is not None and branch[1][0].name in placement.groups:
            placement.groups[branch[1][0].name].append(a)
    return placement
