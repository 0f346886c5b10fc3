"""Avro in the Confluent wire format: codecs compiled per schema, schema registries."""
