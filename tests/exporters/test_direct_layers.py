"""The direct ONNX and TFLite exporters, layer family by layer family, against Keras itself.

Each case is a small Keras 3 model built here (random weights, and trained-looking statistics where
the initial ones would hide a mistake: BatchNormalization, Normalization), saved as `.keras`, read by
modeltool and written by the direct ONNX route and, where every layer has a TFLite lowering, by the
direct TFLite route too (the two routes walk the same IR with the same layer declarations). The
expected numbers are Keras's own `model(x)` on the same inputs; onnxruntime and LiteRT run the
written files. Keras 1/2 meanings are checked against tf_keras.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.exporters.conftest import WRITER_ATOL, WRITER_RTOL

RNG = np.random.default_rng(7)


def _direct(path, **kw):
    import onnx

    import modeltool
    from modeltool.exporters.direct.export import build
    from modeltool.sources.keras import ir_boundary_names

    ir = modeltool.load(path)
    built = build(ir, ir_boundary_names(ir), **kw)
    onnx.checker.check_model(built.proto, full_check=True)
    return built


def _run(proto, feed):
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feed)))


def _check(tmp_path, model, *inputs, atol=WRITER_ATOL, rtol=WRITER_RTOL, **kw):
    """Save `model`, write it directly, and compare onnxruntime's outputs with Keras's."""
    path = tmp_path / "m.keras"
    model.save(path)
    built = _direct(path, **kw)
    want = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
    want = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
    got = _run(built.proto, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol)
    if not kw:
        for g, w in zip(_tflite_outputs(path, inputs) or [], want):
            np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, err_msg="direct TFLite route")
    return built


def _tflite_outputs(path, inputs):
    """The direct TFLite file's outputs in LiteRT, or None where the route does not write the model
    (a layer without a lowering, or a configuration its lowering refuses: `auto` falls back then)."""
    from ai_edge_litert.interpreter import Interpreter

    import modeltool
    from modeltool.exporters.direct.context import NotCovered
    from modeltool.exporters.litert.export import build
    from modeltool.sources.keras import ir_boundary_names

    ir = modeltool.load(path)
    names = ir_boundary_names(ir)
    try:
        built = build(ir, names)
    except NotCovered:
        return None
    out = path.with_suffix(".tflite")
    out.write_bytes(built.data)
    runner = Interpreter(model_path=str(out)).get_signature_runner("serving_default")
    feed = {n: np.asarray(x) for n, x in zip(names[0], inputs)}
    result = runner(**feed)
    return [result[n] for n in names[1]]


def _x(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def _seq(k, shape, *layers, dtype="float32"):
    inp = k.Input(shape, dtype=dtype, name="x")
    out = inp
    for layer in layers:
        out = layer(out)
    return k.Model(inp, out)


def _trained(model):
    """Statistics and scales a trained model has (the initial 0/1 ones would hide a mistake)."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            weights = layer.get_weights()
            new = [RNG.uniform(0.5, 1.5, w.shape) for w in weights[:-2]]  # gamma and/or beta
            new += [RNG.standard_normal(weights[-2].shape) * 0.3, RNG.uniform(0.5, 2.0, weights[-1].shape)]
            layer.set_weights([w.astype("float32") for w in new])
    return model


# ---------------------------------------------------------------- activations


ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "exponential", "silu",
               "swish", "gelu", "mish", "hard_silu", "hard_sigmoid", "leaky_relu", "hard_tanh", "celu",
               "tanh_shrink", "log_sigmoid", "soft_shrink", "hard_shrink", "softmax", "log_softmax", "linear"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name, tmp_path):
    import keras

    _check(tmp_path, _seq(keras, (5, 6), keras.layers.Dense(4, activation=name)), _x(2, 5, 6) * 2)


@pytest.mark.parametrize("kw", [{}, {"max_value": 6.0}, {"negative_slope": 0.1}, {"threshold": 0.5},
                                {"negative_slope": 0.2, "max_value": 1.5, "threshold": 0.3}])
def test_relu_layer(kw, tmp_path):
    import keras

    _check(tmp_path, _seq(keras, (8,), keras.layers.ReLU(**kw)), _x(3, 8) * 3)


def test_activation_layers(tmp_path):
    import keras

    layers = [keras.layers.LeakyReLU(negative_slope=0.25), keras.layers.ELU(alpha=0.7),
              keras.layers.PReLU(shared_axes=[1], alpha_initializer="random_normal"), keras.layers.Softmax(axis=1),
              keras.layers.Activation("softmax")]  # fmt: skip
    _check(tmp_path, _seq(keras, (4, 6), *layers), _x(2, 4, 6))


def test_softmax_over_several_axes(tmp_path):
    import keras

    _check(tmp_path, _seq(keras, (3, 4, 5), keras.layers.Softmax(axis=[1, 2])), _x(2, 3, 4, 5))


def test_prelu_on_a_channels_first_held_feature_map(tmp_path):
    import keras

    model = _seq(keras, (8, 8, 3), keras.layers.Conv2D(4, 3), keras.layers.PReLU(alpha_initializer="random_normal"),
                 keras.layers.Conv2D(2, 1))  # fmt: skip
    _check(tmp_path, model, _x(2, 8, 8, 3))


# ---------------------------------------------------------------- convolutions


CONVS = {
    "same-stride2": dict(filters=5, kernel_size=3, strides=2, padding="same"),
    "same-even-kernel": dict(filters=4, kernel_size=4, strides=3, padding="same"),
    "valid-dilated": dict(filters=4, kernel_size=3, dilation_rate=2),
    "same-dilated": dict(filters=4, kernel_size=3, dilation_rate=2, padding="same"),
    "grouped": dict(filters=6, kernel_size=3, groups=3, padding="same"),
    "no-bias-relu": dict(filters=4, kernel_size=(1, 3), use_bias=False, activation="relu"),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv2d(case, tmp_path):
    import keras

    _check(tmp_path, _seq(keras, (11, 13, 3 if case != "grouped" else 6), keras.layers.Conv2D(**CONVS[case])),
           _x(2, 11, 13, 3 if case != "grouped" else 6))  # fmt: skip


def test_conv2d_with_open_spatial_dims_pads_the_same_way(tmp_path):
    """Unknown height/width: ONNX's SAME_UPPER pads as TensorFlow does (the odd pixel at the end)."""
    import keras

    model = _seq(keras, (None, None, 3), keras.layers.Conv2D(4, 4, strides=2, padding="same"),
                 keras.layers.MaxPooling2D(3, strides=2, padding="same"))  # fmt: skip
    _check(tmp_path, model, _x(1, 9, 12, 3))


def test_conv1d_conv3d_and_causal(tmp_path):
    import keras

    seq = keras.Input((17, 3), name="seq")
    vol = keras.Input((6, 7, 5, 2), name="vol")
    a = keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2)(seq)
    a = keras.layers.Conv1D(4, 3, strides=2, padding="same")(a)
    a = keras.layers.GlobalMaxPooling1D()(a)
    b = keras.layers.Conv3D(3, 2, strides=(1, 2, 1), padding="same")(vol)
    b = keras.layers.AveragePooling3D(2, padding="same")(b)
    b = keras.layers.GlobalAveragePooling3D()(b)
    _check(tmp_path, keras.Model([seq, vol], keras.layers.Concatenate()([a, b])), _x(2, 17, 3), _x(2, 6, 7, 5, 2))


@pytest.mark.parametrize(
    "kw", [dict(kernel_size=3, strides=2, padding="same"), dict(kernel_size=4, strides=2, padding="same"),
           dict(kernel_size=3, strides=2, padding="valid"), dict(kernel_size=1, strides=2, padding="valid"),
           dict(kernel_size=3, strides=2, padding="same", output_padding=1),
           dict(kernel_size=3, strides=3, padding="valid", output_padding=2),
           dict(kernel_size=3, strides=1, padding="same", dilation_rate=2)],
    ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()),
)  # fmt: skip
def test_conv_transpose(kw, tmp_path):
    import keras

    _check(tmp_path, _seq(keras, (5, 6, 3), keras.layers.Conv2DTranspose(4, **kw)), _x(2, 5, 6, 3))


def test_conv_transpose_1d_3d(tmp_path):
    import keras

    seq = keras.Input((7, 3), name="seq")
    vol = keras.Input((3, 4, 3, 2), name="vol")
    a = keras.layers.Conv1DTranspose(3, 3, strides=2, padding="same")(seq)
    b = keras.layers.Conv3DTranspose(2, 2, strides=2)(vol)
    model = keras.Model([seq, vol], [a, b])
    _check(tmp_path, model, _x(2, 7, 3), _x(2, 3, 4, 3, 2))


def test_depthwise_and_separable(tmp_path):
    import keras

    img = keras.Input((9, 9, 4), name="img")
    seq = keras.Input((12, 4), name="seq")
    a = keras.layers.DepthwiseConv2D(3, depth_multiplier=3, strides=2, padding="same", activation="relu6")(img)
    a = keras.layers.SeparableConv2D(5, 3, depth_multiplier=2, dilation_rate=2)(a)
    b = keras.layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same")(seq)
    b = keras.layers.SeparableConv1D(3, 3, strides=2, padding="same")(b)
    _check(tmp_path, keras.Model([img, seq], [a, b]), _x(2, 9, 9, 4), _x(2, 12, 4))


def test_channels_first_layers(tmp_path):
    """A channels_first model (Keras 1/2 Theano-style): computed in its own layout, no transposes."""
    import keras

    model = _seq(keras, (3, 10, 10), keras.layers.Conv2D(4, 3, data_format="channels_first", padding="same"),
                 keras.layers.BatchNormalization(axis=1), keras.layers.MaxPooling2D(2, data_format="channels_first"),
                 keras.layers.UpSampling2D(2, data_format="channels_first"),
                 keras.layers.ZeroPadding2D(1, data_format="channels_first"),
                 keras.layers.Flatten(data_format="channels_first"), keras.layers.Dense(3))  # fmt: skip
    built = _check(tmp_path, _trained(model), _x(2, 3, 10, 10))
    assert built.transposes() == 1  # only the Flatten's move of channels last


# ---------------------------------------------------------------- pooling, padding, resizing


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pooling(padding, tmp_path):
    import keras

    model = _seq(keras, (11, 10, 3), keras.layers.MaxPooling2D(3, strides=2, padding=padding),
                 keras.layers.AveragePooling2D((2, 3), strides=(1, 2), padding=padding),
                 keras.layers.GlobalAveragePooling2D(keepdims=True))  # fmt: skip
    _check(tmp_path, model, _x(2, 11, 10, 3))
    model = _seq(keras, (13, 3), keras.layers.MaxPooling1D(3, padding=padding),
                 keras.layers.AveragePooling1D(2, strides=1, padding=padding), keras.layers.GlobalMaxPooling1D())
    _check(tmp_path, model, _x(2, 13, 3))


def test_padding_cropping_upsampling(tmp_path):
    import keras

    img = keras.Input((6, 7, 2), name="img")
    seq = keras.Input((5, 3), name="seq")
    vol = keras.Input((3, 4, 2, 2), name="vol")
    a = keras.layers.ZeroPadding2D(((1, 2), (0, 3)))(img)
    a = keras.layers.Cropping2D(((2, 0), (1, 1)))(a)
    a = keras.layers.UpSampling2D((2, 3))(a)
    c = keras.layers.UpSampling2D(2, interpolation="bilinear")(img)
    b = keras.layers.ZeroPadding1D((2, 1))(seq)
    b = keras.layers.Cropping1D((1, 0))(b)
    b = keras.layers.UpSampling1D(3)(b)
    d = keras.layers.ZeroPadding3D(1)(vol)
    d = keras.layers.Cropping3D(((1, 0), (0, 1), (1, 1)))(d)
    d = keras.layers.UpSampling3D((1, 2, 2))(d)
    model = keras.Model([img, seq, vol], [a, c, b, d])
    _check(tmp_path, model, _x(2, 6, 7, 2), _x(2, 5, 3), _x(2, 3, 4, 2, 2))


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(12, 20), (5, 3), (7, 7)])
def test_resizing(interpolation, size, tmp_path):
    import keras

    model = _seq(keras, (9, 8, 3), keras.layers.Resizing(*size, interpolation=interpolation))
    _check(tmp_path, model, _x(2, 9, 8, 3))


# ---------------------------------------------------------------- normalization and preprocessing


def test_batch_normalization_axes(tmp_path):
    import keras

    img = keras.Input((5, 6, 4), name="img")
    vec = keras.Input((7,), name="vec")
    seq = keras.Input((3, 5), name="seq")
    a = keras.layers.Conv2D(4, 3, name="conv")(img)
    a = keras.layers.BatchNormalization(name="bn_conv")(a)  # folded into the convolution
    a2 = keras.layers.BatchNormalization(axis=1, center=False, name="bn_rows")(img)
    b = keras.layers.BatchNormalization(scale=False, name="bn_vec")(vec)
    c = keras.layers.BatchNormalization(axis=1, name="bn_steps")(seq)
    model = _trained(keras.Model([img, vec, seq], [a, a2, b, c]))
    built = _check(tmp_path, model, _x(2, 5, 6, 4), _x(2, 7), _x(2, 3, 5))
    assert any("folded" in f for f in built.folds)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_layer_and_group_normalization(opset, tmp_path):
    import keras

    img = keras.Input((4, 5, 6), name="img")
    seq = keras.Input((3, 8), name="seq")
    a = keras.layers.Conv2D(6, 1)(img)  # channels-first held: LayerNormalization over axis 1 there
    a = keras.layers.LayerNormalization(epsilon=1e-5)(a)
    b = keras.layers.GroupNormalization(groups=3)(img)
    c = keras.layers.LayerNormalization(axis=[1, 2], center=False)(seq)
    d = keras.layers.LayerNormalization(rms_scaling=True)(seq)
    e = keras.layers.UnitNormalization()(seq)
    model = keras.Model([img, seq], [a, b, c, d, e])
    for layer in model.layers:
        if "normalization" in layer.name and layer.weights:
            layer.set_weights([RNG.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    _check(tmp_path, model, _x(2, 4, 5, 6), _x(2, 3, 8), opset=opset)


def test_rescaling_and_normalization(tmp_path):
    import keras

    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(RNG.standard_normal((64, 5, 3)) * 3 + 1)
    inv = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.25, 1.0], invert=True)
    model = _seq(keras, (5, 3), keras.layers.Rescaling(1 / 127.5, offset=-1), keras.layers.Rescaling([0.5, 2, 3]),
                 norm, inv)  # fmt: skip
    _check(tmp_path, model, _x(2, 5, 3) * 100)


@pytest.mark.parametrize("name", ["Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                                  "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomBrightness",
                                  "RandomTranslation", "ActivityRegularization", "Identity"])  # fmt: skip
def test_inference_identities(name, tmp_path):
    import keras

    args = {"Dropout": (0.5,), "SpatialDropout1D": (0.5,), "GaussianNoise": (1.0,), "GaussianDropout": (0.5,),
            "AlphaDropout": (0.5,), "RandomRotation": (0.2,), "RandomZoom": (0.2,), "RandomContrast": (0.5,),
            "RandomBrightness": (0.3,), "RandomTranslation": (0.2, 0.2)}.get(name, ())  # fmt: skip
    shape = (6, 6, 3) if name.startswith("Random") else (6, 3)
    layer = getattr(keras.layers, name)(*args)
    built = _check(tmp_path, _seq(keras, shape, layer, keras.layers.Dense(2)), _x(2, *shape))
    assert {n.op_type for n in built.proto.graph.node} <= {"MatMul", "Add"}


# ---------------------------------------------------------------- reshaping and merging


def test_reshaping_layers(tmp_path):
    import keras

    model = _seq(keras, (4, 6), keras.layers.Permute((2, 1)), keras.layers.Reshape((3, -1)),
                 keras.layers.Flatten(), keras.layers.RepeatVector(2), keras.layers.Permute((2, 1)),
                 keras.layers.Reshape((-1,)))  # fmt: skip
    _check(tmp_path, model, _x(2, 4, 6))


def test_merge_layers(tmp_path):
    import keras

    a, b, c = (keras.Input((4, 5), name=n) for n in "abc")
    v = keras.Input((5,), name="v")
    outs = [keras.layers.Add()([a, b, c]), keras.layers.Subtract()([a, b]), keras.layers.Multiply()([a, v]),
            keras.layers.Average()([a, b]), keras.layers.Maximum()([a, b, c]), keras.layers.Minimum()([b, c]),
            keras.layers.Concatenate(axis=1)([a, b]), keras.layers.Dot(axes=(2, 2))([a, b]),
            keras.layers.Dot(axes=1, normalize=True)([v, v]), keras.layers.Dot(axes=(1, 1))([a, c])]  # fmt: skip
    _check(tmp_path, keras.Model([a, b, c, v], outs), _x(2, 4, 5), _x(2, 4, 5), _x(2, 4, 5), _x(2, 5))


def test_keras_operations_recorded_as_layers(tmp_path):
    """`x + 3.0`, `x * y`, `relu6(x + 3) / 6` written in a functional model (MobileNetV3 does)."""
    import keras

    x = keras.Input((4, 4, 3), name="x")
    y = keras.layers.Conv2D(3, 1)(x)
    h = keras.layers.ReLU(6.0)(y + 3.0) * (1.0 / 6.0)
    out = keras.ops.subtract(h * y, x) / 2.0
    _check(tmp_path, keras.Model(x, [out, -y]), _x(2, 4, 4, 3))


# ---------------------------------------------------------------- embedding, masks, recurrent


def test_embedding_with_mask_into_average_pooling(tmp_path):
    """GlobalAveragePooling1D averages only the steps Embedding(mask_zero=True) keeps."""
    import keras

    model = _seq(keras, (7,), keras.layers.Embedding(20, 4, mask_zero=True), keras.layers.Dense(3),
                 keras.layers.GlobalAveragePooling1D(), dtype="int32")  # fmt: skip
    tokens = np.array([[3, 4, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]], "int32")
    _check(tmp_path, model, tokens)


RNNS = {
    "lstm-sequences": lambda k: k.layers.LSTM(5, return_sequences=True),
    "lstm-backwards-states": lambda k: k.layers.LSTM(4, go_backwards=True, return_sequences=True, return_state=True),
    "gru-reset-after": lambda k: k.layers.GRU(5),
    "gru-reset-before": lambda k: k.layers.GRU(5, reset_after=False, return_sequences=True),
    "gru-backwards": lambda k: k.layers.GRU(3, go_backwards=True),
    "simple-rnn-relu": lambda k: k.layers.SimpleRNN(4, activation="relu", return_state=True),
    "lstm-no-bias-hard-sigmoid": lambda k: k.layers.LSTM(3, use_bias=False, recurrent_activation="hard_sigmoid"),
    "bi-concat": lambda k: k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True)),
    "bi-sum": lambda k: k.layers.Bidirectional(k.layers.GRU(3, return_sequences=True), merge_mode="sum"),
    "bi-ave-last": lambda k: k.layers.Bidirectional(k.layers.SimpleRNN(3), merge_mode="ave"),
    "bi-mul": lambda k: k.layers.Bidirectional(k.layers.LSTM(2), merge_mode="mul"),
    "bi-none-states": lambda k: k.layers.Bidirectional(k.layers.LSTM(2, return_state=True), merge_mode=None),
}


@pytest.mark.parametrize("case", sorted(RNNS))
def test_recurrent(case, tmp_path):
    import keras

    inp = keras.Input((6, 4), name="x")
    out = RNNS[case](keras)(inp)
    _check(tmp_path, keras.Model(inp, out), _x(2, 6, 4))


def test_recurrent_stack_and_initial_states(tmp_path):
    """Encoder states feed a decoder (`initial_state`); stacked layers stay time-major between them."""
    import keras

    enc_in, dec_in = keras.Input((5, 3), name="enc"), keras.Input((4, 2), name="dec")
    _, h, c = keras.layers.LSTM(6, return_state=True)(enc_in)
    seq = keras.layers.LSTM(6, return_sequences=True)(dec_in, initial_state=[h, c])
    seq = keras.layers.GRU(6, return_sequences=True)(seq, initial_state=h)
    seq = keras.layers.SimpleRNN(6, return_sequences=True)(seq)
    out = keras.layers.TimeDistributed(keras.layers.Dense(2))(seq)
    built = _check(tmp_path, keras.Model([enc_in, dec_in], out), _x(2, 5, 3), _x(2, 4, 2))
    assert built.transposes() <= 3


def test_time_distributed_convolution(tmp_path):
    import keras

    model = _seq(keras, (3, 8, 8, 2), keras.layers.TimeDistributed(keras.layers.Conv2D(4, 3, strides=2)),
                 keras.layers.TimeDistributed(keras.layers.Flatten()), keras.layers.LSTM(3))  # fmt: skip
    _check(tmp_path, model, _x(2, 3, 8, 8, 2))


#: token rows with masked steps at the end, at the start, in the middle, and none at all: ONNX's
#: `sequence_lens` would cover only the first
TOKENS = np.array([[3, 4, 5, 0, 0, 0], [0, 0, 2, 7, 1, 9], [1, 0, 3, 0, 0, 4], [5, 6, 7, 8, 9, 1]], "int32")

MASKED = {
    "lstm-last": lambda k: [k.layers.LSTM(4)],
    "lstm-sequences-stack": lambda k: [k.layers.LSTM(4, return_sequences=True), k.layers.GRU(3)],
    "lstm-zero-output": lambda k: [k.layers.LSTM(3, return_sequences=True, zero_output_for_mask=True)],
    "gru-backwards-sequences": lambda k: [k.layers.GRU(3, go_backwards=True, return_sequences=True)],
    "gru-reset-before-states": lambda k: [k.layers.GRU(3, reset_after=False, return_state=True)],
    "simple-rnn-into-pooling": lambda k: [k.layers.SimpleRNN(3, return_sequences=True),
                                          k.layers.GlobalAveragePooling1D()],
    "bi-lstm-concat-sequences": lambda k: [k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True))],
    "bi-gru-sum-last": lambda k: [k.layers.Bidirectional(k.layers.GRU(3), merge_mode="sum")],
    "bi-lstm-states": lambda k: [k.layers.Bidirectional(k.layers.LSTM(2, return_state=True))],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MASKED))
def test_masked_recurrent(case, tmp_path):
    """A mask skipping any step (Embedding(mask_zero=True)): Keras keeps the states and repeats the
    previous output at masked steps; the direct file (a Scan) computes the same."""
    import keras

    model = _seq(keras, (6,), keras.layers.Embedding(10, 5, mask_zero=True), *MASKED[case](keras), dtype="int32")
    built = _check(tmp_path, model, TOKENS)
    assert "Scan" in {n.op_type for n in built.proto.graph.node}


def test_masking_layer_and_initial_states(tmp_path):
    """Masking on float steps (trailing, leading, middle, every step masked), and a decoder starting
    from a masked encoder's final states."""
    import keras

    enc_in, dec_in = keras.Input((5, 3), name="enc"), keras.Input((4, 2), name="dec")
    masked = keras.layers.Masking()(enc_in)
    seq = keras.layers.GRU(4, return_sequences=True)(masked)
    _, h, c = keras.layers.LSTM(4, return_state=True)(masked)
    dec = keras.layers.LSTM(4, return_sequences=True)(dec_in, initial_state=[h, c])
    enc = _x(4, 5, 3)
    enc[0, 3:] = 0.0  # trailing steps masked
    enc[1, :2] = 0.0  # leading steps masked
    enc[2, 2] = 0.0  # a step in the middle masked
    enc[3, :] = 0.0  # every step masked: zero outputs, the initial (zero) states
    _check(tmp_path, keras.Model([enc_in, dec_in], [seq, dec]), enc, _x(4, 4, 2))


def test_keras3_rnn_with_initial_state_runs_unmasked_as_keras_does(tmp_path):
    """Keras 3 records no mask for an RNN called with `initial_state` after Masking, and runs it
    unmasked; the direct file follows the config, not the Masking before it."""
    import keras

    enc_in, dec_in = keras.Input((5, 3), name="enc"), keras.Input((4, 2), name="dec")
    _, h, c = keras.layers.LSTM(4, return_state=True)(keras.layers.Masking()(enc_in))
    seq = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Masking()(dec_in), initial_state=[h, c])
    dec = _x(2, 4, 2)
    dec[0] = 0.0
    _check(tmp_path, keras.Model([enc_in, dec_in], seq), _x(2, 5, 3), dec)


def test_keras2_masked_lstm_against_tf_keras(tmp_path):
    """A Keras 2 file (tf_keras writes it): the masked loop is tf_keras's as well."""
    import tf_keras

    import modeltool
    from modeltool.exporters.direct.export import build
    from modeltool.sources.keras import ir_boundary_names

    model = tf_keras.Sequential([tf_keras.Input((6,), dtype="int32"), tf_keras.layers.Embedding(10, 5, mask_zero=True),
                                 tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(3, return_sequences=True)),
                                 tf_keras.layers.LSTM(2)])  # fmt: skip
    path = tmp_path / "k2.h5"
    model.save(path)
    ir = modeltool.load(path)
    got = _run(build(ir, ir_boundary_names(ir)).proto, [TOKENS])[0]
    np.testing.assert_allclose(got, model(TOKENS, training=False).numpy(), atol=WRITER_ATOL, rtol=WRITER_RTOL)


# ---------------------------------------------------------------- attention


@pytest.mark.parametrize("call", ["self", "cross-key", "causal-scores", "mask"])
def test_multi_head_attention(call, tmp_path):
    import keras

    q, v = keras.Input((5, 8), name="q"), keras.Input((7, 6), name="v")
    mha = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=2, name="mha")
    feeds = [_x(2, 5, 8)]
    if call == "self":
        out, inputs = mha(q, q), [q]
    elif call == "cross-key":
        k = keras.Input((7, 8), name="k")
        out, inputs = mha(q, v, key=k), [q, v, k]
        feeds += [_x(2, 7, 6), _x(2, 7, 8)]
    elif call == "causal-scores":
        out, inputs = list(mha(q, q, use_causal_mask=True, return_attention_scores=True)), [q]
    else:
        m = keras.Input((5, 7), name="m", dtype="bool")
        out, inputs = mha(q, v, attention_mask=m), [q, v, m]
        feeds += [_x(2, 7, 6), RNG.random((2, 5, 7)) > 0.3]
    _check(tmp_path, keras.Model(inputs, out), *feeds)


# ---------------------------------------------------------------- Keras 1/2 meanings (tf_keras computes them)


def test_keras2_hard_sigmoid_is_the_legacy_one(tmp_path):
    """A Keras 2 file's hard_sigmoid is clip(0.2x + 0.5, 0, 1), as tf_keras computes it: written as
    ONNX HardSigmoid(0.2, 0.5), in a Dense and inside LSTM/GRU gates."""
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    inp = tf_keras.Input((5, 4), name="x")
    h = tf_keras.layers.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True)(inp)
    h = tf_keras.layers.GRU(3, recurrent_activation="hard_sigmoid", reset_after=False, return_sequences=True)(h)
    h = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(2, recurrent_activation="hard_sigmoid"))(h)
    out = tf_keras.layers.Dense(3, activation="hard_sigmoid")(h)
    model = tf_keras.Model(inp, out)
    model.save(tmp_path / "k2.h5", save_format="h5")
    built = _direct(tmp_path / "k2.h5")
    x = _x(2, 5, 4) * 3
    (got,) = _run(built.proto, [x])
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=WRITER_ATOL, rtol=WRITER_RTOL)
    hard = [n for n in built.proto.graph.node if n.op_type == "HardSigmoid"]
    assert hard and all(a.f == pytest.approx(0.2) for n in hard for a in n.attribute if a.name == "alpha")


def test_keras2_thresholded_relu_and_leaky_alpha(tmp_path):
    import tf_keras

    inp = tf_keras.Input((6,), name="x")
    out = tf_keras.layers.LeakyReLU(alpha=0.1)(tf_keras.layers.ThresholdedReLU(theta=0.4)(inp))
    model = tf_keras.Model(inp, out)
    model.save(tmp_path / "k2.h5", save_format="h5")
    x = _x(3, 6)
    (got,) = _run(_direct(tmp_path / "k2.h5").proto, [x])
    np.testing.assert_allclose(got, model(x).numpy(), atol=1e-6)
