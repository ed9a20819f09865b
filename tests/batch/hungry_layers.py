"""A user's custom-objects module whose layer allocates memory while it builds: a job that runs out.

With `fixtures/keras3/custom_layer.keras`, the rebuild of its `ScaledDense` allocates (and touches)
64 MB at a time, about 1 GB a second, up to 4 GB, then sleeps: `modeltool batch --max-memory` must
kill it long before (the cap keeps a broken limit from hurting the machine: the job then ends at
its time limit instead)."""

import time

import keras
import numpy as np

CHUNK = 64 << 20
CAP = 4 << 30


class ScaledDense(keras.layers.Layer):
    def __init__(self, units=4, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale = units, scale

    def build(self, input_shape):
        hoard = []
        while len(hoard) * CHUNK < CAP:
            hoard.append(np.ones(CHUNK, dtype=np.uint8))
            time.sleep(0.06)
        time.sleep(3600)

    def call(self, x):
        return x

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale}
