"""Adapters to outside systems (object store, transcoder, upload) behind small protocols."""
