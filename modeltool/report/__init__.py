"""The visual report (`--html FILE`): one self-contained HTML file that draws a model as a graph.

`payload` turns what modeltool knows (a loaded model, a diff, a localization) into one JSON-able
dict; `html` renders any such dict, and only that, into the page (the vendored dagre layout and the
page's own script and styles inlined: no network). `graph` holds how one IR graph becomes the nodes
and edges of a drawing: nested models and TF name scopes as collapsible groups.
"""
