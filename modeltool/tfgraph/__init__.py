"""TensorFlow graph formats read without TensorFlow: protobuf schemas, checkpoint bundles, GraphDefs."""
