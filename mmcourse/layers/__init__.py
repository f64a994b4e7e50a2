"""From-scratch building blocks, each tested against its torch twin (chapters 1–8).

Linear and activations (ch. 1), softmax and cross-entropy (ch. 2), convolution and pooling (ch. 3), batch and
layer normalisation (ch. 4), residual blocks (ch. 5), recurrent cells (ch. 6), attention, positional encodings
and the Transformer block (ch. 7).
"""

from mmcourse.layers.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from mmcourse.layers.conv import Conv2d, conv2d_im2col, conv2d_naive, conv_output_shape, im2col, receptive_field
from mmcourse.layers.linear import MLP, Linear, linear, linear_backward
from mmcourse.layers.normalization import BatchNorm, LayerNorm, batch_norm, layer_norm
from mmcourse.layers.pooling import avg_pool2d, max_pool2d
from mmcourse.layers.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding, sinusoidal_table
from mmcourse.layers.residual import BasicBlock, Bottleneck, ResidualBlock, projection_shortcut
from mmcourse.layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from mmcourse.layers.softmax import cross_entropy, log_softmax, logsumexp, softmax
from mmcourse.layers.transformer import TransformerBlock

__all__ = [
    "MultiHeadAttention", "causal_mask", "scaled_dot_product_attention",
    "Conv2d", "conv2d_im2col", "conv2d_naive", "conv_output_shape", "im2col", "receptive_field",
    "MLP", "Linear", "linear", "linear_backward", "avg_pool2d", "max_pool2d",
    "BatchNorm", "LayerNorm", "batch_norm", "layer_norm",
    "LearnedPositionalEncoding", "SinusoidalPositionalEncoding", "sinusoidal_table",
    "BasicBlock", "Bottleneck", "ResidualBlock", "projection_shortcut",
    "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell",
    "cross_entropy", "log_softmax", "logsumexp", "softmax", "TransformerBlock",
]
