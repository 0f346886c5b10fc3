"""The processors' policy as the settings give it (for the live worker and replay alike)."""

from __future__ import annotations

from processors.context import Policy
from streams.settings import Settings


def policy_of(settings: Settings) -> Policy:
    return Policy(
        story_ttl=settings.story_ttl,
        expiry_grace=settings.expiry_grace,
        celebrity_followers=settings.celebrity_followers,
        hll_lg_k=settings.hll_lg_k,
    )
