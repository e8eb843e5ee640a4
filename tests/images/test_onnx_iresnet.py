"""tfxc.images.onnx_iresnet: insightface's ONNX models as Keras IResNets, equal to onnxruntime's embeddings."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from iresnet_graphs import write_iresnet_onnx

from tfxc.errors import DataError
from tfxc.images.iresnet import DEPTHS, WIDTHS
from tfxc.images.onnx_iresnet import iresnet_from_onnx, read_onnx_iresnet

PARITY = 1e-4


def onnxruntime_embeddings(path: str, images: np.ndarray, normalised: bool) -> np.ndarray:
    """What insightface's `ArcFaceONNX` feeds a model: NCHW RGB, (pixel - 127.5) / 127.5 unless the graph
    normalises its raw pixels itself."""
    import onnxruntime as ort

    blob = images.transpose(0, 3, 1, 2).astype(np.float32)
    if not normalised:
        blob = (blob - 127.5) / 127.5
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"data": blob})[0]


def keras_embeddings(path: str, images: np.ndarray, **kwargs) -> np.ndarray:
    backbone, converter = iresnet_from_onnx(path, **kwargs)
    return np.asarray(backbone(converter(images.astype(np.float32)), training=False))


def faces(count: int = 4, size: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype(np.uint8)


@pytest.mark.parametrize("folded, numbered, in_graph, embedding_scale", [
    (True, True, False, 1.0),  # the released form
    (False, False, False, 1.0),  # BNs kept, PyTorch's names
    (True, False, True, 1.7),  # pixels normalised in the graph; a trained scale on the last BN
])
def test_the_converted_model_embeds_as_onnxruntime_does(tmp_path, folded, numbered, in_graph, embedding_scale):
    path = write_iresnet_onnx(tmp_path / "model.onnx", blocks=(2, 1, 2), widths=(8, 16, 24), image_size=24,
                              folded=folded, numbered=numbered, normalise_in_graph=in_graph,
                              embedding_scale=embedding_scale)
    images = faces(size=24)
    reference = onnxruntime_embeddings(path, images, normalised=in_graph)
    assert np.abs(reference).mean() > 0.1  # not a degenerate graph whose outputs are all near zero
    np.testing.assert_allclose(keras_embeddings(path, images), reference, atol=PARITY, rtol=0)


def test_the_layout_is_read_from_the_graph(tmp_path):
    graph = read_onnx_iresnet(write_iresnet_onnx(tmp_path / "m.onnx", blocks=(2, 1, 2), widths=(8, 16, 24),
                                                 image_size=24, embedding_dim=10, normalise_in_graph=True))
    assert (graph.stackwise_num_blocks, graph.stackwise_num_filters) == ((2, 1, 2), (8, 16, 24))
    assert (graph.image_size, graph.embedding_dim, graph.depth) == (24, 10, None)
    np.testing.assert_allclose(graph.scale, [1 / 128])
    np.testing.assert_allclose(graph.offset, [-127.5 / 128])
    # A graph without its own normalisation gets insightface's.
    plain = read_onnx_iresnet(write_iresnet_onnx(tmp_path / "p.onnx"))
    np.testing.assert_allclose((plain.scale, plain.offset), ([1 / 127.5], [-1.0]))


def test_a_named_depth_must_be_the_graphs(tmp_path):
    path = write_iresnet_onnx(tmp_path / "r18.onnx", blocks=DEPTHS["r18"], widths=(4, 8, 8, 16), image_size=32)
    assert read_onnx_iresnet(path).depth == "r18"
    with pytest.raises(DataError, match=r"r18.onnx: the graph is an IResNet of blocks \(2, 2, 2, 2\) \(r18\), "
                                        r"not r50 \(3, 4, 14, 3\)"):
        iresnet_from_onnx(path, depth="r50")


def rewrite(path, change) -> str:
    model = onnx.load(path)
    change(model.graph)
    onnx.save(model, path)
    return path


def node(graph, op: str, occurrence: int = 0):
    return [n for n in graph.node if n.op_type == op][occurrence]


def set_attribute(graph_node, name: str, value) -> None:
    for attribute in graph_node.attribute:
        if attribute.name == name:
            attribute.CopyFrom(onnx.helper.make_attribute(name, value))


@pytest.mark.parametrize("change, message", [
    (lambda g: set_attribute(node(g, "Conv", 2), "pads", [0, 0, 0, 0]),
     r"node Conv 'Conv_\d+' \(initializers \['\d+', '\d+'\]\): layer stage1_block1_conv2 needs pads \[1, 1, 1, 1\]"),
    (lambda g: g.node.remove(node(g, "PRelu", 1)),
     r"the map before stage1_block1_prelu should be read by one PRelu node; it is read by nothing"),
    (lambda g: (g.initializer.append(onnx.numpy_helper.from_array(np.zeros(1, np.float32), "zero")),
                node(g, "Add").input.__setitem__(1, "zero")),
     r"the shortcut '\w+' is neither the block's input nor a 1x1 Conv"),
    (lambda g: g.node.remove(node(g, "BatchNormalization", 0)),
     r"after 0 stages, the map '\w+' is read by no BatchNormalization"),
    (lambda g: node(g, "Gemm").input.__setitem__(1, node(g, "Conv", 0).input[1]),
     r"node Gemm 'Gemm_\d+' .*: the linear map's weight should be a matrix; it is \[8, 3, 3, 3\]"),
    (lambda g: (g.initializer.append(onnx.numpy_helper.from_array(np.ones((12, 20), np.float32), "w20")),
                node(g, "Gemm").input.__setitem__(1, "w20")),
     r"node Gemm .*: the linear map reads 20 values, not a whole number of 16-channel cells"),
])
def test_a_graph_off_the_layout_is_refused_at_its_first_misfit(tmp_path, change, message):
    path = rewrite(write_iresnet_onnx(tmp_path / "bad.onnx"), change)
    with pytest.raises(DataError, match=r"bad.onnx: " + message):
        iresnet_from_onnx(path)


def test_a_damaged_or_missing_file_is_named(tmp_path):
    path = write_iresnet_onnx(tmp_path / "cut.onnx")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.onnx: not an ONNX model"):
        read_onnx_iresnet(path)
    with pytest.raises(DataError, match=r"gone.onnx: no such file"):
        read_onnx_iresnet(str(tmp_path / "gone.onnx"))


def test_a_converted_model_is_a_preset_keras_hub_loads(tmp_path):
    import keras_hub

    from tfxc.images.iresnet import save_iresnet_preset

    path = write_iresnet_onnx(tmp_path / "model.onnx", normalise_in_graph=True)
    backbone, converter = iresnet_from_onnx(path)
    save_iresnet_preset(str(tmp_path / "preset"), backbone=backbone, converter=converter)
    loaded = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    loaded_converter = keras_hub.layers.ImageConverter.from_preset(str(tmp_path / "preset"))
    images = faces()
    np.testing.assert_allclose(np.asarray(loaded(loaded_converter(images.astype(np.float32)))),
                               onnxruntime_embeddings(path, images, normalised=True), atol=PARITY, rtol=0)


@pytest.mark.slow(reason="an r50 at 112x112 (43.6 M weights) written, converted and run twice: about a minute")
def test_an_r50_at_112_converts_within_the_parity(tmp_path):
    path = write_iresnet_onnx(tmp_path / "r50.onnx", blocks=DEPTHS["r50"], widths=WIDTHS, image_size=112,
                              embedding_dim=512)
    images = faces(8, 112)
    gap = np.abs(keras_embeddings(path, images, depth="r50") - onnxruntime_embeddings(path, images, False)).max()
    print(f"r50 at 112: max |embedding difference| {gap:.2e} over {images.shape[0]} images")
    assert gap <= PARITY


def test_the_preset_command_takes_an_onnx_model(tmp_path, capsys):
    from helpers import tool_module

    from tfxc.encoders.image import ImageEncoder

    tool = tool_module("iresnet_preset")
    path = write_iresnet_onnx(tmp_path / "r18.onnx", blocks=DEPTHS["r18"], widths=(4, 8, 8, 16), image_size=32,
                              embedding_dim=24)
    with pytest.raises(SystemExit):
        tool.main(["r34", str(tmp_path / "no"), "--onnx", path])
    assert "r18.onnx: the graph is an IResNet of blocks (2, 2, 2, 2) (r18), not r34" in capsys.readouterr().err
    assert tool.main(["r18", str(tmp_path / "preset"), "--onnx", path]) == 0
    assert "IResNet r18 at 32x32, 24-d, the weights of" in capsys.readouterr().out
    images = faces(3, 32)
    encoder = ImageEncoder(str(tmp_path / "preset"), pooling="embedding")
    converted = encoder.converter(images.astype(np.float32))  # as `decode_images` hands the encoder its images
    np.testing.assert_allclose(np.asarray(encoder({"images": converted})),
                               onnxruntime_embeddings(path, images, normalised=False), atol=PARITY, rtol=0)
