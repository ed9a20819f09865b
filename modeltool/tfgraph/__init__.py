"""TensorFlow graph formats: protobuf schemas, checkpoint bundles, GraphDefs and object paths,
all read without TensorFlow; `native.py` (which imports TensorFlow when used) makes them runnable
and convertible as frozen graphs."""
