"""A worker process: the Faust app hosting the engine, the media service and the API."""
