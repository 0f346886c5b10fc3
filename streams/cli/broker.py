"""The broker a command needs, or an exit naming how to give one."""

from __future__ import annotations

from streams.settings import Settings


def need_broker(settings: Settings) -> str:
    """The configured broker; exits with what to set when there is none."""
    if not settings.broker:
        raise SystemExit(
            "storystream: no broker: set STORYSTREAM_BROKER (or --broker), "
            "or start `storystream dev` in this directory"
        )
    return settings.broker
