"""The direct TFLite route: a `.tflite` written from modeltool's IR with the `flatbuffers` package
and LiteRT's schema, builtin ops only, no TensorFlow and no TFLite converter.

`export.build` walks the IR with the same `Walker` as the direct ONNX route; each layer class's
lowering is named by its declaration in `modeltool.keras.layers` (the `tflite` field beside `onnx`),
so shapes and weight roles are read once for both targets. `passes` folds BatchNormalization and
fuses activations as the converter does; `flatbuffer` writes the file.
"""
