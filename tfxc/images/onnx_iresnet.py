"""insightface's released ONNX recognition models as Keras IResNets, read with the `onnx` package (no PyTorch).

insightface publishes its face recognisers as ONNX exports of `arcface_torch`'s IResNet (e.g. the r50 of its
`buffalo_l` pack, trained on WebFace600K). The exporter leaves them in one of two forms, and both read here:

  released   PyTorch's eval-mode export folds every BN that follows a convolution into it: the stem's, and
             each block's conv1+bn2, conv2+bn3 and downsample conv+BN are a `Conv` with a bias; the BNs that
             follow an addition (each block's bn1, the features' BN) stay `BatchNormalization` nodes.
  unfolded   a `Conv` without bias, then its `BatchNormalization`.

Initializer names are the exporter's (module paths, or numbers after constant folding), so the graph is read
by its data flow: the stem, then block by block (BN, conv, [BN], PReLU, strided conv, [BN], `Add` of the input
or its 1x1 downsample), then BN, flatten, linear map, BN. Depth, widths, image size and embedding width come
out of the graph; a graph off the layout is refused at its first misfit node, named with its initializers.

Folded parameters land exactly where the Keras IResNet has room for them: a convolution's bias becomes the
offset of the BN after it (whose other statistics are then the identity), an exporter's BN epsilon other than
1e-5 moves into the variance, and a scale of the embedding's BN (the Keras layer has none: insightface fixes it
at 1) moves into its variance. Leading `Sub` / `Mul` / `Div` / `Add` nodes on the input (some releases
normalise pixels in the graph) become the image converter's scale and offset.

Layouts: ONNX convolutions are [out, in, h, w] on NCHW maps, Keras's [h, w, in, out] on NHWC; PyTorch flattens
the last map as (channel, height, width), Keras as (height, width, channel), so the linear map's rows are
permuted to match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfxc.errors import DataError
from tfxc.images.iresnet import BN_EPSILON, DEPTHS, IResNetBackbone, IResNetImageConverter

PASS_THROUGH = ("Identity", "Dropout")
NORMALISING = ("Sub", "Add", "Mul", "Div")


@dataclass
class OnnxIResNet:
    """An IResNet as read from an ONNX graph.

    Attributes:
      stackwise_num_blocks: blocks a stage, e.g. (3, 4, 14, 3) for an r50.
      stackwise_num_filters: channels a stage.
      image_size: the input's side S (the flattened map is S / 2^stages a side).
      embedding_dim: the embedding's width.
      scale, offset: the pixel conversion (pixel * scale + offset), float32 [1] or [3] (one a channel): the
        graph's own leading normalisation when it has one, else insightface's (pixel - 127.5) / 127.5.
      weights: Keras layer name -> its weights in Keras's order and layout (float32).
      sources: Keras layer name -> the ONNX node(s) its weights came from (for messages).
    """

    stackwise_num_blocks: tuple[int, ...]
    stackwise_num_filters: tuple[int, ...]
    image_size: int
    embedding_dim: int
    scale: np.ndarray
    offset: np.ndarray
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def depth(self) -> str | None:
        """insightface's name of the depth ("r50"), None for a layout of blocks it does not name."""
        return next((name for name, blocks in DEPTHS.items() if blocks == self.stackwise_num_blocks), None)


def iresnet_from_onnx(path: str, depth: str | None = None, dtype=None) -> tuple[IResNetBackbone,
                                                                                IResNetImageConverter]:
    """The Keras IResNet and image converter of an insightface ONNX model at `path`.

    `depth` ("r18" ... "r100"), when given, must be the graph's. Raises DataError naming the file and the
    first node, initializer or layer that does not fit.
    """
    graph = read_onnx_iresnet(path)
    if depth is not None and DEPTHS.get(depth) != graph.stackwise_num_blocks:
        named = graph.depth or "no named depth"
        raise DataError(f"the graph is an IResNet of blocks {graph.stackwise_num_blocks} ({named}), not {depth} "
                        f"{DEPTHS.get(depth, '(no such depth)')}", path=path)
    backbone = IResNetBackbone(graph.stackwise_num_blocks, graph.stackwise_num_filters,
                               (graph.image_size, graph.image_size, 3), graph.embedding_dim, dtype=dtype,
                               name=f"iresnet_{graph.depth or 'onnx'}")
    for layer in backbone.layers:
        arrays = graph.weights.pop(layer.name, None)
        if arrays is None:
            if layer.weights:
                raise DataError(f"no weights in the graph for layer {layer.name}", path=path)
            continue
        expected = [tuple(weight.shape) for weight in layer.weights]
        if [array.shape for array in arrays] != expected:
            raise DataError(f"{graph.sources[layer.name]}: shapes {[list(a.shape) for a in arrays]} do not fit "
                            f"layer {layer.name}, which holds {[list(s) for s in expected]}", path=path)
        layer.set_weights(arrays)
    if graph.weights:
        raise DataError(f"weights for layers the IResNet lacks: {sorted(graph.weights)}", path=path)
    converter = IResNetImageConverter(image_size=(graph.image_size, graph.image_size),
                                      scale=_scalar_or_list(graph.scale), offset=_scalar_or_list(graph.offset))
    return backbone, converter


def read_onnx_iresnet(path: str) -> OnnxIResNet:
    """Walks the ONNX graph at `path` (see the module's docstring); raises DataError at the first misfit."""
    return _Walk(path).run()


class _Walk:
    """One pass over the graph's data flow, from its input to its output."""

    def __init__(self, path: str):
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise DataError("reading ONNX weights needs the onnx package: pip install onnx", path=path) from None
        try:
            model = onnx.load(path)
        except FileNotFoundError:
            raise DataError("no such file", path=path) from None
        except Exception as error:  # the protobuf parser's errors have no common base class
            raise DataError(f"not an ONNX model ({type(error).__name__}: {error})", path=path) from None
        self.path = path
        graph = model.graph
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        self.nodes = list(graph.node)
        for node in self.nodes:
            if node.op_type == "Constant":
                value = next((a for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[node.output[0]] = numpy_helper.to_array(value.t)
        self.consumers: dict[str, list] = {}
        self.producer = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producer[name] = node
        inputs = [i for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise DataError(f"an IResNet graph has one image input; this one has {[i.name for i in inputs]}",
                            path=path)
        self.input = inputs[0]
        self.outputs = [o.name for o in graph.output]
        self.weights: dict[str, list[np.ndarray]] = {}
        self.sources: dict[str, str] = {}

    def fail(self, message: str, node=None):
        where = f"node {self._name(node)}: " if node is not None else ""
        raise DataError(where + message, path=self.path)

    def _name(self, node) -> str:
        label = node.name or f"#{self.nodes.index(node)}"
        params = [name for name in node.input if name in self.constants]
        return f"{node.op_type} '{label}'" + (f" (initializers {params})" if params else "")

    # -- following the data flow ----------------------------------------------------------------------

    def _skip(self, tensor: str) -> str:
        """`tensor`, or what it becomes through Identity / Dropout nodes."""
        while True:
            users = self.consumers.get(tensor, [])
            if len(users) == 1 and users[0].op_type in PASS_THROUGH:
                tensor = users[0].output[0]
            else:
                return tensor

    def _users(self, tensor: str) -> list:
        return self.consumers.get(self._skip(tensor), [])

    def _only_user(self, tensor: str, op_types: tuple[str, ...], what: str):
        users = self._users(tensor)
        if len(users) != 1 or users[0].op_type not in op_types:
            found = ", ".join(self._name(u) for u in users) or "nothing (a graph output)"
            self.fail(f"{what} should be read by one {' or '.join(op_types)} node; it is read by {found} "
                      f"(after {self._name(self.producer[tensor]) if tensor in self.producer else 'the input'})")
        return users[0]

    def _constant(self, node, index: int) -> np.ndarray:
        if index >= len(node.input) or node.input[index] not in self.constants:
            self.fail(f"input {index} should be a constant (an initializer)", node)
        return self.constants[node.input[index]].astype(np.float32)

    def _attribute(self, node, name: str, default):
        from onnx.helper import get_attribute_value

        return next((get_attribute_value(a) for a in node.attribute if a.name == name), default)

    # -- the layers -------------------------------------------------------------------------------------

    def run(self) -> OnnxIResNet:
        tensor, scale, offset = self._normalisation(self.input.name)
        stem = self._only_user(tensor, ("Conv",), "the image")
        tensor, width = self._conv_bn(stem, "stem_conv", "stem_bn", kernel=3, stride=1)
        tensor = self._prelu(tensor, "stem_prelu")
        blocks: list[int] = []
        widths: list[int] = []
        while True:
            bn1 = next((u for u in self._users(tensor) if u.op_type == "BatchNormalization"), None)
            if bn1 is None:
                self.fail(f"after {len(blocks)} stages, the map '{tensor}' is read by no BatchNormalization "
                          f"(a block's bn1 or the features' BN): {[self._name(u) for u in self._users(tensor)]}")
            reader = self._users(bn1.output[0])
            if len(reader) == 1 and reader[0].op_type in ("Flatten", "Reshape"):
                break
            stride = self._block_strides(bn1)  # None: the block is malformed, and `_block` says where
            stage_starts = stride == 2 or (stride is None and not widths)
            if not widths and stride == 1:
                self.fail("the first block should stride by 2, as every stage's first block of an IResNet does", bn1)
            if stage_starts:
                blocks.append(0)
            blocks[-1] += 1
            tensor, width = self._block(tensor, bn1, f"stage{len(blocks)}_block{blocks[-1]}", width)
            if stage_starts:
                widths.append(width)
        self._bn(bn1, "features_bn")
        flatten = reader[0]
        side_cells = self._linear(flatten.output[0], widths[-1] if widths else width)
        side = int(round(side_cells ** 0.5))
        if side * side != side_cells:
            self.fail(f"the flattened map has {side_cells} cells a channel: not a square map", flatten)
        image_size = side * 2 ** len(blocks)
        declared = [d.dim_value for d in self.input.type.tensor_type.shape.dim]
        if len(declared) == 4 and declared[2] and declared[2] != image_size:
            self.fail(f"the input is declared {declared[2]}x{declared[3]}, but the flattened map is {side}x{side} "
                      f"after {len(blocks)} stride-2 stages, i.e. {image_size}x{image_size} images")
        return OnnxIResNet(tuple(blocks), tuple(widths), image_size, self.embedding_dim, scale, offset,
                           self.weights, self.sources)

    def _normalisation(self, tensor: str) -> tuple[str, np.ndarray, np.ndarray]:
        """The leading elementwise pixel conversion, folded into (scale, offset); insightface's when none."""
        scale, offset, found = np.ones(1, np.float32), np.zeros(1, np.float32), False
        while len(self._users(tensor)) == 1 and self._users(tensor)[0].op_type in NORMALISING:
            node = self._users(tensor)[0]
            constant_at = 1 if node.input[1] in self.constants else 0
            value = self._constant(node, constant_at).reshape(-1)
            if value.size not in (1, 3):
                self.fail(f"a pixel normalisation constant of {value.size} values (1, or 3 for one a channel)", node)
            if node.op_type == "Sub" and constant_at == 0:
                self.fail("a normalisation that subtracts the image from a constant", node)
            if node.op_type == "Div" and constant_at == 0:
                self.fail("a normalisation that divides a constant by the image", node)
            if node.op_type == "Add":
                offset = offset + value
            elif node.op_type == "Sub":
                offset = offset - value
            elif node.op_type == "Mul":
                scale, offset = scale * value, offset * value
            else:
                scale, offset = scale / value, offset / value
            found, tensor = True, node.output[0]
        if not found:
            scale, offset = np.float32([1 / 127.5]), np.float32([-1.0])
        return tensor, scale.astype(np.float32), offset.astype(np.float32)

    def _block(self, tensor: str, bn1, name: str, in_width: int) -> tuple[str, int]:
        self._bn(bn1, f"{name}_bn1")
        conv1 = self._only_user(bn1.output[0], ("Conv",), f"{name}'s bn1 output")
        out, width = self._conv_bn(conv1, f"{name}_conv1", f"{name}_bn2", kernel=3, stride=1)
        out = self._prelu(out, f"{name}_prelu")
        conv2 = self._only_user(out, ("Conv",), f"{name}'s PReLU output")
        stride = int(self._attribute(conv2, "strides", [1, 1])[0])
        out, _ = self._conv_bn(conv2, f"{name}_conv2", f"{name}_bn3", kernel=3, stride=stride)
        add = self._only_user(out, ("Add",), f"{name}'s bn3 output")
        others = [i for i in add.input if self._skip(i) != self._skip(out)]
        if len(others) != 1:
            self.fail(f"{name}'s addition should add its branch to one shortcut; its inputs are {list(add.input)}",
                      add)
        shortcut = others[0]
        if self._skip(shortcut) == self._skip(tensor):
            if stride != 1 or width != in_width:
                self.fail(f"{name} changes the map (stride {stride}, {in_width} -> {width} channels) but adds its "
                          "input unchanged (no downsample)", add)
        else:
            if stride == 1:
                self.fail(f"{name} has a downsample shortcut but no stride: an IResNet changes width only where "
                          "a stage begins, with stride 2", add)
            down = self._producer_chain(shortcut)
            if down.input[0] != tensor and self._skip(down.input[0]) != self._skip(tensor):
                self.fail(f"{name}'s shortcut does not start from the block's input", down)
            self._conv_bn(down, f"{name}_downsample_conv", f"{name}_downsample_bn", kernel=1, stride=stride)
        return add.output[0], width

    def _block_strides(self, bn1) -> int | None:
        """The stride of the block that `bn1` begins (read off its conv2), None where the chain breaks."""
        chain = [bn1]
        for op_types in (("Conv",), ("BatchNormalization", "PRelu"), ("PRelu", "Conv"), ("Conv",)):
            users = self._users(chain[-1].output[0])
            if len(users) != 1 or users[0].op_type not in op_types:
                return None
            if users[0].op_type == "Conv" and len(chain) > 1:
                return int(self._attribute(users[0], "strides", [1, 1])[0])
            chain.append(users[0])
        return None

    def _producer_chain(self, tensor: str):
        """The Conv at the head of a downsample shortcut (Conv, or Conv then BN) whose output is `tensor`."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in PASS_THROUGH:
            node = self.producer.get(node.input[0])
        if node is not None and node.op_type == "BatchNormalization":
            node = self.producer.get(node.input[0])
        if node is None or node.op_type != "Conv":
            self.fail(f"the shortcut '{tensor}' is neither the block's input nor a 1x1 Conv (and BN) of it")
        return node

    def _conv_bn(self, conv, conv_name: str, bn_name: str, kernel: int, stride: int) -> tuple[str, int]:
        weight = self._constant(conv, 1)
        if weight.ndim != 4 or weight.shape[2:] != (kernel, kernel):
            self.fail(f"layer {conv_name} is a {kernel}x{kernel} convolution; this weight is {list(weight.shape)}",
                      conv)
        pads = list(self._attribute(conv, "pads", [0, 0, 0, 0]))
        strides = list(self._attribute(conv, "strides", [1, 1]))
        want_pads = [kernel // 2] * 4
        if pads != want_pads or strides != [stride, stride] or self._attribute(conv, "group", 1) != 1 or \
                list(self._attribute(conv, "dilations", [1, 1])) != [1, 1]:
            self.fail(f"layer {conv_name} needs pads {want_pads}, strides {[stride, stride]}, one group and no "
                      f"dilation; the node has pads {pads}, strides {strides}", conv)
        bias = self._constant(conv, 2) if len(conv.input) > 2 and conv.input[2] else None
        self.weights[conv_name] = [weight.transpose(2, 3, 1, 0)]
        self.sources[conv_name] = self._name(conv)
        out = conv.output[0]
        users = self._users(out)
        if len(users) == 1 and users[0].op_type == "BatchNormalization":
            self._bn(users[0], bn_name, shift=bias)
            out = users[0].output[0]
        else:  # the BN was folded into the convolution: its bias is the BN's offset, the rest the identity
            width = weight.shape[0]
            offset = bias if bias is not None else np.zeros(width, np.float32)
            self.weights[bn_name] = [np.ones(width, np.float32), offset, np.zeros(width, np.float32),
                                     np.full(width, 1 - BN_EPSILON, np.float32)]
            self.sources[bn_name] = self._name(conv) + " (its folded BN)"
        return out, weight.shape[0]

    def _bn(self, node, name: str, shift: np.ndarray | None = None, with_scale: bool = True) -> None:
        scale, offset, mean, variance = (self._constant(node, i) for i in range(1, 5))
        epsilon = float(self._attribute(node, "epsilon", 1e-5))
        if shift is not None:  # BN(x + shift) is BN(x) with its mean moved by the shift
            mean = mean - shift
        variance = variance + np.float32(epsilon - BN_EPSILON)
        if with_scale:
            self.weights[name] = [scale, offset, mean, variance]
        else:  # a BN without a scale: scale / sqrt(v + eps) is 1 / sqrt(v' + eps) for v' = (v + eps) / scale^2 - eps
            if np.any(scale <= 0):
                self.fail(f"layer {name} has no scale (insightface fixes it at 1); this BN's scale is not positive "
                          "everywhere, so it cannot be moved into the variance", node)
            variance = (variance + BN_EPSILON) / np.square(scale) - BN_EPSILON
            self.weights[name] = [offset, mean, variance]
        self.sources[name] = self._name(node)

    def _prelu(self, tensor: str, name: str) -> str:
        node = self._only_user(tensor, ("PRelu",), f"the map before {name}")
        slope = self._constant(node, 1).reshape(-1)
        self.weights[name] = [slope.reshape(1, 1, -1)]
        self.sources[name] = self._name(node)
        return node.output[0]

    def _linear(self, flattened: str, channels: int) -> int:
        """Reads the linear map (Gemm, or MatMul [+ Add]) and the embedding's BN; returns the cells a channel."""
        node = self._only_user(flattened, ("Gemm", "MatMul"), "the flattened map")
        weight = self._constant(node, 1)
        if weight.ndim != 2:
            self.fail(f"the linear map's weight should be a matrix; it is {list(weight.shape)}", node)
        if node.op_type == "Gemm":
            if self._attribute(node, "transA", 0) or self._attribute(node, "alpha", 1.0) != 1.0 or \
                    self._attribute(node, "beta", 1.0) != 1.0:
                self.fail("the linear map must be a plain x @ W (+ b): transA 0, alpha 1, beta 1", node)
            if self._attribute(node, "transB", 0):
                weight = weight.T
            bias = self._constant(node, 2) if len(node.input) > 2 and node.input[2] else None
            out = node.output[0]
        else:
            bias, out = None, node.output[0]
            users = self._users(out)
            if len(users) == 1 and users[0].op_type == "Add":
                add = users[0]
                bias, out = self._constant(add, 0 if add.input[0] in self.constants else 1), add.output[0]
        inputs, self.embedding_dim = weight.shape
        if inputs % channels:
            self.fail(f"the linear map reads {inputs} values, not a whole number of {channels}-channel cells", node)
        cells = inputs // channels
        # (channel, cell) rows, PyTorch's flattening, to (cell, channel), Keras's.
        kernel = weight.reshape(channels, cells, self.embedding_dim).transpose(1, 0, 2).reshape(inputs, -1)
        bias = np.zeros(self.embedding_dim, np.float32) if bias is None else bias.reshape(-1)
        self.weights["fc"], self.sources["fc"] = [kernel, bias], self._name(node)
        users = self._users(out)
        if len(users) == 1 and users[0].op_type == "BatchNormalization":
            self._bn(users[0], "embedding_bn", with_scale=False)
        else:  # folded into the linear map (or absent): the identity
            width = self.embedding_dim
            self.weights["embedding_bn"] = [np.zeros(width, np.float32), np.zeros(width, np.float32),
                                            np.full(width, 1 - BN_EPSILON, np.float32)]
            self.sources["embedding_bn"] = self._name(node) + " (no BN after it)"
        return cells


def _scalar_or_list(values: np.ndarray):
    return float(values[0]) if values.size == 1 else [float(v) for v in values]
