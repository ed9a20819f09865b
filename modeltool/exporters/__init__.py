"""Exporters: one module per target, each writing any `Source` (`modeltool.sources`) to a path.

Which exporter writes which target, and what each target takes, is the table in `modeltool.targets`.
Every exporter has the signature `export(source, path, options, context) -> details`."""
