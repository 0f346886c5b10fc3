"""Failures that are not a record's fault."""


class Unavailable(RuntimeError):
    """A service processing needs (a schema registry, say) cannot answer: the batch fails and
    is retried from its checkpoint; its records are never dead-lettered for it."""
