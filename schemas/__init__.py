"""Avro schemas (the source of truth) and the pydantic models that mirror them."""
