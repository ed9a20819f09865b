"""SavedModel for TF Serving: a `serving_default` signature keyed by the source model's names.

How the graph gets there depends on the source (Keras's own ExportArchive for Keras models, a
function over the frozen graph for TF graph files: `Source.write_saved_model`); either way
`tf.saved_model.load`, `saved_model_cli show --all` and TF Serving see plain signatures whose input
keys are the model's input names and output keys its output names.
"""

from __future__ import annotations

from typing import Any

from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, Source


def export(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    """The SavedModel target; details name the signature and its keys."""
    return source.write_saved_model(path, options)
