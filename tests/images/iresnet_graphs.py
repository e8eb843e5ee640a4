"""insightface-shaped ONNX graphs of an IResNet, written with the `onnx` helper API: the stand-in for a download.

`write_iresnet_onnx` writes what PyTorch's eval-mode export of arcface_torch's `iresnet.py` gives: NCHW input
"data", nodes in the order of the module's `forward` (a block's downsample after its bn3), and either
  folded=True   the released form: every BN that follows a convolution folded into it (a Conv with a bias);
  folded=False  Conv without bias, then BatchNormalization,
with random weights and BN statistics far from the identity, so that a misplaced parameter shows.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPS = 1e-5


class _Graph:
    def __init__(self, rng: np.random.Generator, folded: bool, numbered: bool):
        self.rng, self.folded, self.numbered = rng, folded, numbered
        self.nodes, self.initializers, self.count = [], [], 0

    def constant(self, name: str, value: np.ndarray) -> str:
        self.count += 1
        key = str(600 + self.count) if self.numbered else name
        self.initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), key))
        return key

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(self.nodes)}", **attributes))
        return out

    def bn_params(self, width: int):
        return (self.rng.uniform(0.5, 1.5, width), self.rng.normal(0, 0.2, width), self.rng.normal(0, 0.2, width),
                self.rng.uniform(0.5, 2.0, width))

    def bn(self, x: str, name: str, width: int, params=None) -> str:
        scale, offset, mean, var = params if params is not None else self.bn_params(width)
        names = [self.constant(f"{name}.{k}", v) for k, v in
                 zip(("weight", "bias", "running_mean", "running_var"), (scale, offset, mean, var))]
        return self.node("BatchNormalization", [x, *names], epsilon=EPS)

    def conv_bn(self, x: str, name: str, bn_name: str, cin: int, cout: int, kernel: int, stride: int,
                gain: float = 1.0) -> str:
        weight = self.rng.normal(0, (2.0 / (cin * kernel * kernel)) ** 0.5, (cout, cin, kernel, kernel))
        attrs = dict(kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4, strides=[stride, stride])
        scale, *rest = self.bn_params(cout)
        params = (scale * gain, *rest)
        if self.folded:
            scale, offset, mean, var = params
            factor = scale / np.sqrt(var + EPS)
            return self.node("Conv", [x, self.constant(f"{name}.weight", weight * factor[:, None, None, None]),
                                      self.constant(f"{name}.bias", offset - mean * factor)], **attrs)
        out = self.node("Conv", [x, self.constant(f"{name}.weight", weight)], **attrs)
        return self.bn(out, bn_name, cout, params)

    def prelu(self, x: str, name: str, width: int) -> str:
        return self.node("PRelu", [x, self.constant(f"{name}.weight", self.rng.uniform(0.05, 0.5, (width, 1, 1)))])


def write_iresnet_onnx(path, blocks=(1, 1), widths=(8, 16), image_size=16, embedding_dim=12, *, folded=True,
                       numbered=True, normalise_in_graph=False, embedding_scale=1.0, seed=0) -> str:
    """Writes a random IResNet as insightface exports it; returns `path`.

    numbered: initializer names are numbers (as after constant folding), else PyTorch's module paths.
    normalise_in_graph: the graph begins with Sub 127.5, Mul 1/128 on raw pixels (as some releases do).
    embedding_scale: the last BN's scale (insightface keeps it at 1).
    """
    g = _Graph(np.random.default_rng(seed), folded, numbered)
    x = "data"
    if normalise_in_graph:
        x = g.node("Sub", [x, g.constant("sub", np.float32(127.5))])
        x = g.node("Mul", [x, g.constant("mul", np.float32(1 / 128))])
    x = g.conv_bn(x, "conv1", "bn1", 3, widths[0], 3, 1)
    x = g.prelu(x, "prelu", widths[0])
    cin, side = widths[0], image_size
    for stage, (count, width) in enumerate(zip(blocks, widths), start=1):
        for index in range(count):
            name, stride = f"layer{stage}.{index}", 2 if index == 0 else 1
            out = g.bn(x, f"{name}.bn1", cin)
            out = g.conv_bn(out, f"{name}.conv1", f"{name}.bn2", cin, width, 3, 1)
            out = g.prelu(out, f"{name}.prelu", width)
            # A branch's last BN scaled down, as training leaves it: a deep random net whose branches add at
            # full gain grows its activations to ~1e6 (r50), where float32's rounding alone exceeds any atol.
            out = g.conv_bn(out, f"{name}.conv2", f"{name}.bn3", width, width, 3, stride, gain=0.1)
            shortcut = x
            if stride != 1 or cin != width:
                shortcut = g.conv_bn(x, f"{name}.downsample.0", f"{name}.downsample.1", cin, width, 1, stride)
            x = g.node("Add", [out, shortcut])
            cin, side = width, side // stride
    x = g.bn(x, "bn2", cin)
    x = g.node("Flatten", [x], axis=1)
    inputs = cin * side * side
    weight = g.rng.normal(0, inputs ** -0.5, (embedding_dim, inputs))
    x = g.node("Gemm", [x, g.constant("fc.weight", weight), g.constant("fc.bias", g.rng.normal(0, 0.1, embedding_dim))],
               transB=1)
    scale, offset, mean, var = g.bn_params(embedding_dim)
    x = g.bn(x, "features", embedding_dim, (np.full(embedding_dim, embedding_scale), offset, mean, var))
    g.nodes[-1].output[0] = "fc1"
    graph = helper.make_graph(
        g.nodes, "iresnet", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, image_size, image_size])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [None, embedding_dim])], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
