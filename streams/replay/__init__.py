"""`storystream replay`: the event log re-run through the topology, in event time, as a bounded
job: its input's end is fixed when it starts."""

from streams.replay.job import ReplaySummary, replay

__all__ = ["ReplaySummary", "replay"]
