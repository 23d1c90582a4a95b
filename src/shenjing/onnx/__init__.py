"""ONNX export (optional: needs ``pip install onnx``; ``onnxruntime`` runs the result).

    import shenjing.onnx
    shenjing.onnx.export(model, "model.onnx", opset=17)

Inference graphs of Sequential and functional models (nested models are inlined) made of: Dense,
Conv1D/Conv2D (``valid``, ``same``, ``causal``; strides, dilation, groups), DepthwiseConv2D,
SeparableConv2D, max/average pooling 1D/2D, global pooling, BatchNormalization (folded into a scale and
a shift), LayerNormalization, every activation function and activation layer (ReLU, LeakyReLU, PReLU,
ELU, Softmax), Dropout and the noise layers (identities at inference), Flatten, Reshape, Permute,
ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, and the merge layers (Add, Subtract, Multiply,
Average, Maximum, Minimum, Concatenate). Channels-last convolution and pooling are wrapped in
Transposes (ONNX's Conv is channels-first). The graph computes in float32; the batch axis is dynamic.
"""

from .export import SUPPORTED_LAYERS, export

__all__ = ["export", "SUPPORTED_LAYERS"]
