"""A user's custom-objects module whose layer never finishes building: a job that hangs.

`fixtures/keras3/custom_layer.keras` holds a `ScaledDense`; handing this module to `--custom-objects`
makes its rebuild sleep for an hour, as a conversion stuck in a deadlock would (tests and
bench/bench_batch.py use it to show that `modeltool batch --timeout` kills such a job)."""

import time

import keras


class ScaledDense(keras.layers.Layer):
    def __init__(self, units=4, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale = units, scale

    def build(self, input_shape):
        time.sleep(3600)

    def call(self, x):
        return x

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale}
