"""MobileNet v2 as a Keras network initialised from a quantised TFLite file's weights.

Both of Google's ImageNet MobileNet v2 1.0 files read the same way: the TF1
`mobilenet_v2_1.0_224_quant.tflite` (uint8 per-tensor weights) and the TF2
`tf2_mobilenet_v2_1.0_224_ptq.tflite` (int8 per-channel weights). Their convolutions come in the
same order (stem, 17 inverted residual blocks, the 1280-channel 1x1, the classifier) with batch
normalisation folded into kernel and bias, so `training.networks.mobilenet.load_tflite_weights`
fills the batch-norm-free network built here.

Keras' own `keras.applications.MobileNetV2` pads its stride-2 layers explicitly (ZeroPadding2D, then
'valid'), one pixel off the files' 'SAME' padding; this builder uses 'same' throughout, as the files
do. Input: the project's model input, turned into MobileNet's in the first layer (shared with v1).
"""

from __future__ import annotations

from pathlib import Path

from training.networks.mobilenet import FIRST_CHANNELS, load_tflite_weights, mobilenet_input

# (expansion, output channels, stride of the depthwise 3x3) of the 17 blocks, at width 1.0;
# block n is the files' `expanded_conv_n` (TF1; `expanded_conv_{n+1}` in the TF2 file)
V2_BLOCKS = (
    (1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1),
)  # fmt: skip
LAST_CHANNELS = 1280
LAST_LAYER = "conv_last_relu"  # the 1280-channel map the files average-pool


def build_mobilenet_v2(
    weights: str | Path | None = None,
    input_size: int | None = None,
    output_stride: int = 32,
    blocks: int = len(V2_BLOCKS),
    name: str = "mobilenet_v2",
):
    """MobileNet v2 (width 1.0, no batch norm) up to block `blocks` (0-based numbering, so
    `blocks` blocks), fully convolutional when `input_size` is None. The 1280-channel 1x1
    (`conv_last`, `conv_last_relu`) closes the network when all 17 blocks are built.

    `weights`: a TFLite MobileNet v2 file whose convolutions fill the network (None: random).
    `output_stride` 16 keeps block 13 at stride 1 and dilates the depthwise of blocks 14-16 by 2
    (the atrous form: the same weights, a feature map twice as fine).

    Layer names: `conv0`; per block n `block{n}_expand` (not in block 0), `block{n}_dw`,
    `block{n}_project` (linear), `block{n}_add` (where input and output match), each
    convolution followed by `..._relu` (ReLU6) except the projection.
    """
    import keras

    if output_stride not in (16, 32):
        raise ValueError("output_stride must be 16 or 32")
    inputs, x = mobilenet_input(input_size)
    x = keras.layers.Conv2D(FIRST_CHANNELS, 3, strides=2, padding="same", name="conv0")(x)
    x = keras.layers.ReLU(6.0, name="conv0_relu")(x)
    stride_so_far, dilation = 2, 1
    for number, (expansion, channels, stride) in enumerate(V2_BLOCKS[:blocks]):
        block_dilation = dilation
        if stride == 2 and stride_so_far == output_stride:
            stride, dilation = 1, dilation * 2  # later blocks see the lost stride as dilation
        stride_so_far *= stride
        shortcut = x
        prefix = f"block{number}"
        if expansion != 1:
            x = keras.layers.Conv2D(x.shape[-1] * expansion, 1, name=f"{prefix}_expand")(x)
            x = keras.layers.ReLU(6.0, name=f"{prefix}_expand_relu")(x)
        x = keras.layers.DepthwiseConv2D(
            3, strides=stride, padding="same", dilation_rate=block_dilation, name=f"{prefix}_dw"
        )(x)
        x = keras.layers.ReLU(6.0, name=f"{prefix}_dw_relu")(x)
        x = keras.layers.Conv2D(channels, 1, name=f"{prefix}_project")(x)
        if stride == 1 and shortcut.shape[-1] == channels:
            x = keras.layers.Add(name=f"{prefix}_add")([shortcut, x])
    if blocks == len(V2_BLOCKS):
        x = keras.layers.Conv2D(LAST_CHANNELS, 1, name="conv_last")(x)
        x = keras.layers.ReLU(6.0, name=LAST_LAYER)(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_tflite_weights(model, weights)
    return model


def layer_stride(layer: str, output_stride: int = 32) -> int:
    """Pixels per feature-map cell of a layer of `build_mobilenet_v2(output_stride=...)`."""
    if layer.startswith("conv0"):
        return 2
    last = len(V2_BLOCKS) - 1
    if layer.startswith("block"):
        last = int(layer[len("block") :].split("_")[0])
    stride = 2
    for _expansion, _channels, block_stride in V2_BLOCKS[: last + 1]:
        stride = min(stride * block_stride, output_stride)
    return stride
