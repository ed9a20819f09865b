"""Frozen GraphDef `.pb`: the source's graph with every variable folded.

For runtimes and tools that still want TF1 graphs. Placeholders carry the model's input names and
an Identity per output carries its output name, so `--inputs`/`--outputs` are rarely needed to use
the file.
"""

from __future__ import annotations

from typing import Any

from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, Source


def export(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    from modeltool.tfgraph.native import named_graph_def

    fg = source.frozen(options)
    graph_def = named_graph_def(fg)
    with open(path, "wb") as fh:
        fh.write(graph_def.SerializeToString())
    return {
        "nodes": len(graph_def.node),
        "op_types": sorted({n.op for n in graph_def.node}),
        "inputs": [e.name for e in fg.inputs],
        "outputs": [e.name for e in fg.outputs],
    }
