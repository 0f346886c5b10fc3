"""Stage handlers: decode records, read state, call the processors, write state, emit."""
