"""The OpenAPI 3.1 description's schemas: the records the read side answers with (from the
pydantic models) and the write side's request and answer bodies."""

from __future__ import annotations

import copy
from typing import Any

from processors.media import IMAGE_TYPES, VIDEO_TYPES
from schemas.records import ReactionCounts, StoryState, Tray
from schemas.types import IDENTIFIER_PATTERN, NAMED_REACTIONS
from streams.api.writes import MAX_BATCH_VIEWS

Schema = dict[str, Any]

REF = "#/components/schemas/{model}"
ID: Schema = {"type": "string", "pattern": IDENTIFIER_PATTERN}
TIME: Schema = {"type": "string", "format": "date-time"}


def ref(name: str) -> Schema:
    """A reference to a schema of the components."""
    return {"$ref": REF.format(model=name)}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A JSON object of exactly these properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def json_content(schema: Schema) -> dict[str, Any]:
    """A body of JSON of that schema."""
    return {"application/json": {"schema": schema}}


def _models() -> dict[str, Schema]:
    schemas: dict[str, Schema] = {}
    for model in (StoryState, Tray, ReactionCounts):
        schema = model.model_json_schema(mode="serialization", ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    view = copy.deepcopy(schemas["StoryState"])  # its author sees a failed story with a reason
    view["title"] = "StoryView"
    view["properties"]["status"]["enum"] = [*view["properties"]["status"]["enum"], "failed"]
    view["properties"]["error"] = {"type": "string"}
    schemas["StoryView"] = view
    return schemas


def components() -> dict[str, Schema]:
    """Every named schema of the description."""
    counts = {"type": "integer", "minimum": 0}
    media = sorted(IMAGE_TYPES | VIDEO_TYPES)
    reaction = {
        "type": "string",
        "minLength": 1,
        "description": "an emoji, or one of " + ", ".join(sorted(NAMED_REACTIONS)),
    }
    view = obj(
        {
            "story_id": ID,
            "viewer_id": {**ID, "description": "the caller, if given"},
            "viewed_at": TIME,
            "event_id": ID,
        },
        ("story_id",),
    )
    return _models() | {
        "Error": obj({"error": {"type": "string"}}, ("error",)),
        "Views": obj(
            {"story_id": ID, "unique_viewers": counts, "total_views": counts},
            ("story_id", "unique_viewers", "total_views"),
        ),
        "Viewers": obj(
            {
                "viewers": {
                    "type": "array",
                    "items": obj(
                        {"viewer_id": ID, "first_viewed_at": TIME},
                        ("viewer_id", "first_viewed_at"),
                    ),
                },
                "next_cursor": {"type": ["string", "null"]},
            },
            ("viewers", "next_cursor"),
        ),
        "Stories": obj({"stories": {"type": "array", "items": ref("StoryState")}}, ("stories",)),
        "Health": obj(
            {
                "status": {"const": "ok"},
                "partitions": {"type": "array", "items": {"type": "integer"}},
            },
            ("status", "partitions"),
        ),
        "Accepted": obj({"event_id": ID}, ("event_id",)),
        "AcceptedBatch": obj({"event_ids": {"type": "array", "items": ID}}, ("event_ids",)),
        "StoryAccepted": obj(
            {
                "event_id": ID,
                "event_ids": {"type": "array", "items": ID},
                "story_id": ID,
                "media_id": ID,
            },
            ("event_id", "event_ids", "story_id", "media_id"),
        ),
        "Upload": obj(
            {
                "upload_id": ID,
                "size": counts,
                "offset": counts,
                "complete": {"type": "boolean"},
                "content_type": {"type": "string"},
            },
            ("upload_id", "size", "offset", "complete", "content_type"),
        ),
        "NewUpload": obj(
            {"size": {"type": "integer", "minimum": 1}, "content_type": {"enum": media}},
            ("size", "content_type"),
        ),
        "NewStory": obj(
            {
                "upload_id": ID,
                "author_id": ID,
                "audience": {"enum": ["followers", "close_friends", "public"]},
                "mentions": {"type": "array", "items": ID},
                "hashtags": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 100},
                },
                "location": {"type": "string", "maxLength": 200},
            },
            ("upload_id",),
        ),
        "View": obj({"viewer_id": ID, "viewed_at": TIME}),
        "ViewsBatch": obj(
            {"views": {"type": "array", "items": view, "minItems": 1, "maxItems": MAX_BATCH_VIEWS}},
            ("views",),
        ),
        "Reaction": obj(
            {"reaction": reaction, "user_id": ID, "text": {"type": "string", "maxLength": 1000}},
            ("reaction",),
        ),
        "Highlight": obj(
            {"highlight_id": ID, "author_id": ID, "title": {"type": "string", "maxLength": 200}},
            ("highlight_id",),
        ),
    }
