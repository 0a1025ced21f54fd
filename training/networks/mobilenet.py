"""MobileNet v1 as a Keras network initialised from a quantised TFLite file's weights.

The TFLite file (for example Google's ImageNet-trained `mobilenet_v1_1.0_224_quant` family) stores
each convolution's kernel as uint8/int8 with scales, with batch normalisation already folded into
the kernel and a bias. `tflite_conv_weights` dequantises them in the graph's order and
`build_mobilenet_v1` fills a batch-norm-free Keras MobileNet v1 with them (MobileNet v2:
`training.networks.mobilenet_v2`, with the same reader and input).

The network takes the project's one model input (`core.imaging.normalize`, ResNet50 'caffe' style)
and turns it back into MobileNet's own input, (pixels - 128) / 128, in its first layer, so training
and the app keep one preprocessing function whatever the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.imaging import IMAGENET_BGR_MEAN

# (stride of the depthwise 3x3, pointwise channels) of the 13 blocks, at width 1.0
V1_BLOCKS = (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024),
)  # fmt: skip
FIRST_CHANNELS = 32
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass(frozen=True)
class ConvWeights:
    """One convolution's dequantised weights in Keras layout and its op type."""

    op: str
    kernel: np.ndarray  # Conv2D: (h, w, in, out); DepthwiseConv2D: (h, w, channels, 1)
    bias: np.ndarray


def dequantise(values: np.ndarray, quantization: dict) -> np.ndarray:
    """Integer tensor -> float32 with its per-tensor or per-channel scales and zero points."""
    scales = np.asarray(quantization["scales"], dtype=np.float64)
    zero_points = np.asarray(quantization["zero_points"], dtype=np.float64)
    values = values.astype(np.float64)
    if scales.size == 0:
        return values.astype(np.float32)
    if scales.size == 1:
        return ((values - zero_points[0]) * scales[0]).astype(np.float32)
    shape = [1] * values.ndim
    shape[quantization["quantized_dimension"]] = scales.size
    return ((values - zero_points.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def tflite_conv_weights(path: str | Path) -> list[ConvWeights]:
    """Every convolution of a TFLite file, in graph order, dequantised to float (Keras layout)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details = {item["index"]: item for item in interpreter.get_tensor_details()}
    convolutions = []
    for op in interpreter._get_ops_details():  # the public API exposes no op list
        if op["op_name"] not in CONV_OPS:
            continue
        kernel_id, bias_id = int(op["inputs"][1]), int(op["inputs"][2])
        kernel = dequantise(
            interpreter.get_tensor(kernel_id), details[kernel_id]["quantization_parameters"]
        )
        bias = dequantise(
            interpreter.get_tensor(bias_id), details[bias_id]["quantization_parameters"]
        )
        # TFLite kernels are (out, h, w, in) and depthwise (1, h, w, channels): Keras wants
        # (h, w, in, out) and (h, w, channels, 1); the same transpose does both.
        convolutions.append(ConvWeights(op["op_name"], kernel.transpose(1, 2, 3, 0), bias))
    return convolutions


def caffe_to_mobilenet(x):
    """The project's model input (`core.imaging.normalize`: BGR minus the ImageNet mean) ->
    MobileNet's input, RGB in [-1, 1]."""
    return ((x + IMAGENET_BGR_MEAN)[..., ::-1] - 128.0) / 128.0


def mobilenet_input(input_size: int | None):
    """The Keras input of every MobileNet here (the project's model input, any size when
    `input_size` is None) and the layer turning it into MobileNet's own input."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    return inputs, keras.layers.Lambda(caffe_to_mobilenet, name="to_mobilenet_input")(inputs)


def build_mobilenet_v1(
    weights: str | Path | None = None,
    input_size: int | None = None,
    output_stride: int = 32,
    blocks: int = 13,
    name: str = "mobilenet_v1",
):
    """MobileNet v1 (width 1.0, no batch norm: it is folded into kernel and bias) up to block
    `blocks`, fully convolutional when `input_size` is None.

    `weights`: a TFLite MobileNet v1 file whose convolutions fill the network (None: random).
    `output_stride` 16 keeps block 12 at stride 1 and dilates block 13's depthwise by 2 (the
    atrous form: the same weights, a feature map twice as fine).
    """
    import keras

    if output_stride not in (16, 32):
        raise ValueError("output_stride must be 16 or 32")
    inputs, x = mobilenet_input(input_size)
    x = keras.layers.Conv2D(FIRST_CHANNELS, 3, strides=2, padding="same", name="conv0")(x)
    x = keras.layers.ReLU(6.0, name="conv0_relu")(x)
    dilation = 1
    for number, (stride, channels) in enumerate(V1_BLOCKS[:blocks], start=1):
        if output_stride == 16 and number >= 12 and stride == 2:
            stride, dilation = 1, 2
        x = keras.layers.DepthwiseConv2D(
            3,
            strides=stride,
            padding="same",
            dilation_rate=dilation if number >= 13 else 1,
            name=f"dw{number}",
        )(x)
        x = keras.layers.ReLU(6.0, name=f"dw{number}_relu")(x)
        x = keras.layers.Conv2D(channels, 1, name=f"pw{number}")(x)
        x = keras.layers.ReLU(6.0, name=f"pw{number}_relu")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_tflite_weights(model, weights)
    return model


def load_tflite_weights(model, path: str | Path) -> None:
    """Fill the model's convolutions, in order, from a TFLite file's (the file may hold more
    convolutions after them, such as a classifier). A file this project exported is refused:
    its converter folded the input layer's division by 128 into the first kernel and a dilated
    block's biases into other operations, so its convolutions are not the trained ones."""
    if is_project_export(path):
        raise ValueError(
            f"{path} is a network this project exported: the converter folded its input layer's "
            "scale and dilated blocks' biases into other operations, so its convolutions cannot "
            "be read back as trained. Start from the training run's checkpoint or from "
            "Google's file."
        )
    layers = [
        layer for layer in model.layers if layer.__class__.__name__ in ("Conv2D", "DepthwiseConv2D")
    ]
    convolutions = tflite_conv_weights(path)
    if len(convolutions) < len(layers):
        raise ValueError(f"{path} has {len(convolutions)} convolutions, the network {len(layers)}")
    for layer, weights in zip(layers, convolutions, strict=False):
        kernel, bias = layer.get_weights()
        if kernel.shape != weights.kernel.shape or bias.shape != weights.bias.shape:
            raise ValueError(
                f"{path}: convolution for {layer.name} is {weights.kernel.shape}, "
                f"the network wants {kernel.shape}"
            )
        layer.set_weights([weights.kernel, weights.bias])


def is_project_export(path: str | Path) -> bool:
    """True for a TFLite file this project exported: float input and a first op that adds the
    ImageNet mean back (Google's files take uint8 or int8 input and start with a convolution)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    first = interpreter._get_ops_details()[0]["op_name"]  # the public API exposes no op list
    return first == "ADD" and interpreter.get_input_details()[0]["dtype"] == np.float32
