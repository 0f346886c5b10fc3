"""The write side of the HTTP API on a live worker (embedded broker, moto S3): a whole story's
life through HTTP only, who may write what, validation naming the field, idempotency, and the
limits (413, 429, 503)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.s3_store import S3ObjectStore
from infra.s3 import EmbeddedS3
from processors.media import original_key
from streams.client.sync import EventClient
from streams.settings import Settings
from tests.integration import worker_fixture
from tests.integration.worker_fixture import WorkerProcess, launch_worker
from tests.integration.workers import SECRET, wait_for
from tests.integration.write_client import (
    Answer,
    call,
    interrupted_put,
    jpeg,
    worker_token,
)

pytestmark = pytest.mark.integration
embedded_s3 = worker_fixture.embedded_s3
TAG = uuid.uuid4().hex[:6]
MEDIA = [{"name": "1080", "url": "https://cdn.example/a.jpg", "width": 1080, "height": 1920,
          "content_type": "image/jpeg"}]  # fmt: skip


def s3_env(s3: EmbeddedS3, bucket: str) -> dict[str, str]:
    key_id, secret = s3.credentials
    return {"s3_endpoint_url": s3.endpoint_url, "s3_bucket": bucket,
            "s3_access_key_id": key_id, "s3_secret_access_key": secret}  # fmt: skip


@pytest.fixture(scope="module")
def worker(
    settings: Settings, embedded_s3: EmbeddedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker with room to write (a rate no test reaches)."""
    started = launch_worker(
        settings, Path(tmp_path_factory.mktemp("write-api")), app_id=f"wa-{TAG}",
        api_secret=SECRET, api_writes_per_second=10_000, api_write_burst=10_000,
        upload_part_bytes=5 * 1024 * 1024, **s3_env(embedded_s3, f"wa-{TAG}"),
    )  # fmt: skip
    yield started
    started.stop()


@pytest.fixture(scope="module")
def tight(
    settings: Settings, embedded_s3: EmbeddedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A worker with a user's rate of 2 writes, then one per 100 s, and a producer queue of
    one record; another app, on the same object store bucket as `worker`."""
    started = launch_worker(
        settings, Path(tmp_path_factory.mktemp("write-api-tight")), app_id=f"wt-{TAG}",
        api_secret=SECRET, api_writes_per_second=0.01, api_write_burst=2, api_producer_queue=1,
        **s3_env(embedded_s3, f"wa-{TAG}"),
    )  # fmt: skip
    yield started
    started.stop()


def user(name: str) -> str:
    return f"{name}-{TAG}"


def post_ready_story(settings: Settings, story_id: str, author: str, **fields: Any) -> None:
    """A story with ready media, published past the HTTP API (the tests' setting)."""
    with EventClient(settings.bootstrap()) as client:
        client.story_posted(story_id=story_id, author_id=author, media=MEDIA, **fields).result(20)


def visible(worker: WorkerProcess, story_id: str, viewer: str) -> Answer | None:
    answer = call(worker, "GET", f"/stories/{story_id}", viewer)
    return answer if answer.status == 200 else None


def test_a_whole_story_life_through_http_only(
    worker: WorkerProcess, embedded_s3: EmbeddedS3
) -> None:
    alice, bob, carol = user("alice"), user("bob"), user("carol")
    assert call(worker, "POST", f"/follow/{alice}", bob).status == 202
    data = jpeg(2600, 2000, quality=100)  # ~7.8 MB: a whole 5 MiB part, then the last
    size = len(data)
    created = call(worker, "POST", "/uploads", alice, {"size": size, "content_type": "image/jpeg"})
    assert created.status == 201, created.body
    upload = created.body["upload_id"]
    path = f"/uploads/{upload}"
    cuts = [0, size // 3, 2 * size // 3, size]

    def put(first: int, last: int) -> Answer:
        return call(worker, "PUT", path, alice, data=data[first:last],
                    headers={"Content-Range": f"bytes {first}-{last - 1}/{size}"})  # fmt: skip

    assert put(cuts[0], cuts[1]).body["offset"] == cuts[1]
    interrupted_put(worker, alice, path, cuts[1], size, data[cuts[1] : cuts[2]], sent=1000)
    # What came before the drop is kept (stored once the server sees the connection gone).
    head = wait_for(lambda: (h := call(worker, "HEAD", path, alice)).headers["Upload-Offset"]
                    != str(cuts[1]) and h, 10, "the interrupted chunk's bytes kept")  # fmt: skip
    resume_at = int(head.headers["Upload-Offset"])
    assert cuts[1] < resume_at <= cuts[1] + 1000
    assert head.headers["Range"] == f"bytes=0-{resume_at - 1}"
    assert put(resume_at, cuts[2]).body["offset"] == cuts[2]
    done = put(cuts[2], cuts[3])
    assert done.body == {"upload_id": upload, "size": size, "offset": size, "complete": True,
                         "content_type": "image/jpeg"}  # fmt: skip
    bucket = S3ObjectStore(f"wa-{TAG}", endpoint_url=embedded_s3.endpoint_url,
                           region=embedded_s3.region, credentials=embedded_s3.credentials)  # fmt: skip
    assert bucket.get_bytes(original_key(upload)) == data
    assert bucket.list_multipart(f"uploads/{upload}/") == []

    posted = call(worker, "POST", "/stories", alice, {"upload_id": upload, "audience": "followers",
                                                      "hashtags": ["life"]})  # fmt: skip
    assert posted.status == 202, posted.body
    story = posted.body["story_id"]
    active = wait_for(lambda: (a := visible(worker, story, alice)) and a.body["status"] == "active"
                      and a, 120, "the story's media transcoded")  # fmt: skip
    assert {r["name"] for r in active.body["renditions"]} >= {"thumbnail"}
    assert visible(worker, story, carol) is None  # not a follower

    def tray_stories(of: str) -> list[str]:
        entries = call(worker, "GET", f"/users/{of}/tray", of).body.get("entries", [])
        return [s for e in entries for s in e["story_ids"]]

    wait_for(lambda: story in tray_stories(bob), 30, "the story in bob's tray")
    assert call(worker, "POST", f"/stories/{story}/views", bob).status == 202
    assert call(worker, "POST", f"/stories/{story}/reactions", bob, {"reaction": "fire",
                                                                    "text": "wow"}).status == 202  # fmt: skip
    counted = wait_for(lambda: (v := call(worker, "GET", f"/stories/{story}/views", alice).body)
                       ["total_views"] == 1 and v, 30, "the view counted")  # fmt: skip
    assert counted == {"story_id": story, "unique_viewers": 1, "total_views": 1}
    viewers = call(worker, "GET", f"/stories/{story}/viewers", alice).body["viewers"]
    assert [v["viewer_id"] for v in viewers] == [bob]
    reactions = wait_for(lambda: (r := call(worker, "GET", f"/stories/{story}/reactions", bob)
                                  .body)["total"] == 1 and r, 30, "the reaction counted")  # fmt: skip
    assert reactions["counts"] == {"fire": 1}
    wait_for(lambda: not any(e["has_unseen"] for e in call(worker, "GET", f"/users/{bob}/tray",
             bob).body["entries"]), 30, "bob's tray marked seen")  # fmt: skip

    highlight = f"/stories/{story}/highlights"
    assert call(worker, "POST", highlight, alice, {"highlight_id": "best", "title": "Best"}
                ).status == 202  # fmt: skip
    wait_for(lambda: visible(worker, story, alice).body["highlight_ids"] == ["best"],  # type: ignore[union-attr]
             30, "the highlight")  # fmt: skip
    assert visible(worker, story, alice).body["status"] == "highlighted"  # type: ignore[union-attr]
    assert call(worker, "DELETE", f"{highlight}/best", alice).status == 202
    wait_for(lambda: visible(worker, story, alice).body["highlight_ids"] == [],  # type: ignore[union-attr]
             30, "the highlight removed")  # fmt: skip

    assert call(worker, "DELETE", f"/stories/{story}", alice).status == 202
    wait_for(lambda: visible(worker, story, alice) is None, 30, "the story deleted")
    for reader in (alice, bob):
        assert call(worker, "GET", f"/stories/{story}", reader).status == 404
        assert call(worker, "GET", f"/stories/{story}/views", reader).status == 404
    wait_for(lambda: story not in tray_stories(bob), 30, "the story out of bob's tray")


def test_close_friends_through_http(worker: WorkerProcess, settings: Settings) -> None:
    dana, eve = user("dana"), user("eve")
    story = f"cf-{TAG}"
    assert call(worker, "POST", f"/follow/{dana}", eve).status == 202
    assert call(worker, "POST", f"/close-friends/{eve}", dana).status == 202
    post_ready_story(settings, story, dana, audience="close_friends")
    wait_for(lambda: visible(worker, story, eve), 30, "the close friends' story seen by eve")
    assert call(worker, "DELETE", f"/close-friends/{eve}", dana).status == 202
    wait_for(lambda: visible(worker, story, eve) is None, 30, "eve no longer a close friend")
    assert call(worker, "DELETE", f"/follow/{dana}", eve).status == 202


WRITES: list[tuple[str, str, Any]] = [  # method, path ({s}: a story, {u}: an upload), body
    ("POST", "/stories/{s}/views", None),
    ("POST", "/views:batch", {"views": [{"story_id": "{s}"}]}),
    ("POST", "/stories/{s}/reactions", {"reaction": "like"}),
    ("POST", "/stories/{s}/highlights", {"highlight_id": "h1"}),
    ("DELETE", "/stories/{s}/highlights/h1", None),
    ("DELETE", "/stories/{s}", None),
    ("POST", "/follow/someone", None),
    ("DELETE", "/follow/someone", None),
    ("POST", "/close-friends/someone", None),
    ("DELETE", "/close-friends/someone", None),
    ("POST", "/uploads", {"size": 10, "content_type": "image/png"}),
    ("PUT", "/uploads/{u}", None),
    ("HEAD", "/uploads/{u}", None),
    ("POST", "/stories", {"upload_id": "{u}"}),
]


@pytest.fixture(scope="module")
def owned(worker: WorkerProcess, settings: Settings) -> dict[str, str]:
    """frank's story and upload, for everyone else to try."""
    frank = user("frank")
    story = f"owned-{TAG}"
    post_ready_story(settings, story, frank, audience="public")
    wait_for(lambda: visible(worker, story, frank), 30, "frank's story")
    upload = call(worker, "POST", "/uploads", frank, {"size": 10, "content_type": "image/png"})
    return {"s": story, "u": upload.body["upload_id"], "owner": frank}


def _fill(text: Any, owned: dict[str, str]) -> Any:
    import json

    raw = json.dumps(text)
    for name, value in owned.items():
        raw = raw.replace("{" + name + "}", value)
    return json.loads(raw)


def _write(worker: WorkerProcess, method: str, path: str, body: Any, **how: Any) -> Answer:
    headers = {"Content-Range": "bytes 0-9/10"} if method == "PUT" else None
    data = b"\x89PNG\r\n\x1a\n\x00\x00" if method == "PUT" else None
    return call(worker, method, path, body=body, data=data, headers=headers, **how)


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_every_write_route_wants_a_users_token(
    worker: WorkerProcess, owned: dict[str, str], method: str, path: str, body: Any
) -> None:
    path, body = _fill(path, owned), _fill(body, owned)
    assert _write(worker, method, path, body).status == 401
    assert _write(worker, method, path, body, token=worker_token(worker)).status == 401
    assert _write(worker, method, path, body, token="not.a.token").status == 401


OTHERS = [(m, p, b) for m, p, b in WRITES if "{s}/h" in p or "{u}" in p or p == "/stories/{s}"]


@pytest.mark.parametrize(("method", "path", "body"), OTHERS, ids=[f"{m} {p}" for m, p, _ in OTHERS])
def test_someone_elses_story_or_upload_is_403(
    worker: WorkerProcess, owned: dict[str, str], method: str, path: str, body: Any
) -> None:
    answer = _write(worker, method, _fill(path, owned), _fill(body, owned), user=user("mallory"))
    assert answer.status == 403, answer.body


IDENTITIES = [  # a body naming another actor than the token's subject
    ("POST", "/stories/{s}/views", {"viewer_id": "{owner}"}, "viewer_id"),
    ("POST", "/views:batch", {"views": [{"story_id": "{s}", "viewer_id": "{owner}"}]}, "viewer_id"),
    ("POST", "/stories/{s}/reactions", {"reaction": "like", "user_id": "{owner}"}, "user_id"),
    ("POST", "/stories/{s}/highlights", {"highlight_id": "h", "author_id": "{owner}"}, "author_id"),
    ("POST", "/stories", {"upload_id": "{u}", "author_id": "{owner}"}, "author_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), IDENTITIES,
                         ids=[f"{m} {p}" for m, p, _, _ in IDENTITIES])  # fmt: skip
def test_acting_as_someone_else_is_403(
    worker: WorkerProcess, owned: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    answer = _write(worker, method, _fill(path, owned), _fill(body, owned), user=user("mallory"))
    assert answer.status == 403 and answer.error.startswith(field), answer.body


INVALID = [  # method, path, body, headers, the start of the reason
    ("POST", "/stories/{s}/views", {"viewed_at": "yesterday"}, None, "viewed_at: "),
    ("POST", "/stories/{s}/views", {"story": "x"}, None, "story: not a field"),
    ("POST", "/stories/bad%20id/views", None, None, "story_id: "),
    ("POST", "/stories/{s}/views", None, {"Idempotency-Key": "not a key"}, "Idempotency-Key: "),
    ("POST", "/views:batch", {"views": []}, None, "views: must be a list of 1 to 500"),
    ("POST", "/views:batch", {"views": [{"story_id": "{s}"}] * 501}, None, "views: "),
    (
        "POST",
        "/views:batch",
        {"views": [{"story_id": "{s}"}, {"story_id": "a b"}]},
        None,
        "views[1].story_id: ",
    ),
    (
        "POST",
        "/views:batch",
        {"views": [{"story_id": "{s}", "viewed_at": 5}]},
        None,
        "views[0].viewed_at: ",
    ),
    (
        "POST",
        "/views:batch",
        {"views": [{"story_id": "{s}", "event_id": "a/b"}]},
        None,
        "views[0].event_id: ",
    ),
    ("POST", "/views:batch", "[1]", None, "body: must be a JSON object"),
    ("POST", "/stories/{s}/reactions", {}, None, "reaction: required"),
    ("POST", "/stories/{s}/reactions", {"reaction": "🔥🔥"}, None, "reaction: "),
    ("POST", "/stories/{s}/reactions", {"reaction": "like", "text": "x" * 1001}, None, "text: "),
    ("POST", "/stories/{s}/highlights", {"title": "t"}, None, "highlight_id: required"),
    ("POST", "/stories/{s}/highlights", {"highlight_id": "no way"}, None, "highlight_id: "),
    ("POST", "/stories/{s}/highlights", {"highlight_id": "h", "title": "t" * 201}, None, "title: "),
    ("DELETE", "/stories/{s}/highlights/no%20way", None, None, "highlight_id: "),
    ("DELETE", "/stories/no%20way", None, None, "story_id: "),
    ("POST", "/follow/no%20way", None, None, "user_id: "),
    ("POST", "/follow/{owner}", None, None, "user_id: a user cannot follow themselves"),
    ("DELETE", "/close-friends/no%20way", None, None, "user_id: "),
    ("POST", "/close-friends/{owner}", None, None, "user_id: "),
    ("POST", "/uploads", {"content_type": "image/png"}, None, "size: "),
    ("POST", "/uploads", {"size": "10", "content_type": "image/png"}, None, "size: "),
    ("POST", "/uploads", {"size": 10, "content_type": "text/plain"}, None, "content_type: "),
    ("POST", "/uploads", {"size": 0, "content_type": "image/png"}, None, "size: empty"),
    ("PUT", "/uploads/{fresh}", None, {}, "Content-Range: required"),
    ("PUT", "/uploads/{fresh}", None, {"Content-Range": "bytes 0-9/11"}, "Content-Range: SIZE"),
    ("PUT", "/uploads/{fresh}", None, {"Content-Range": "bytes 5-1/10"}, "Content-Range: "),
    ("PUT", "/uploads/{fresh}", None, {"Content-Range": "bytes 0-4/10"}, "Content-Range: says 5"),
    ("POST", "/stories", {"audience": "public"}, None, "upload_id: "),
    ("POST", "/stories", {"upload_id": "{u}", "audience": "friends"}, None, "audience: "),
    ("POST", "/stories", {"upload_id": "{u}", "mentions": ["a b"]}, None, "mentions.0: "),
    ("POST", "/stories", {"upload_id": "{u}", "location": 7}, None, "location: "),
]


@pytest.fixture(scope="module")
def mine(worker: WorkerProcess, settings: Settings) -> dict[str, str]:
    """gina's story and her complete upload (a PNG), for her own requests."""
    gina = user("gina")
    story = f"mine-{TAG}"
    post_ready_story(settings, story, gina, audience="public")
    wait_for(lambda: visible(worker, story, gina), 30, "gina's story")
    png = b"\x89PNG\r\n\x1a\n" + bytes(90)
    upload = call(worker, "POST", "/uploads", gina, {"size": 98, "content_type": "image/png"})
    upload_id = upload.body["upload_id"]
    done = call(worker, "PUT", f"/uploads/{upload_id}", gina, data=png,
                headers={"Content-Range": "bytes 0-97/98"})  # fmt: skip
    assert done.body["complete"], done.body
    return {"s": story, "u": upload_id, "owner": gina}


@pytest.mark.parametrize(("method", "path", "body", "headers", "reason"), INVALID,
                         ids=[f"{m} {p} {r}" for m, p, _, _, r in INVALID])  # fmt: skip
def test_invalid_requests_are_400_naming_the_field(
    worker: WorkerProcess, mine: dict[str, str], method: str, path: str, body: Any,
    headers: dict[str, str] | None, reason: str,
) -> None:  # fmt: skip
    if "{fresh}" in path:  # an upload of 10 bytes, none sent
        path = path.replace("{fresh}", _fresh_upload(worker, mine["owner"]))
    path, body = _fill(path, mine), _fill(body, mine)
    data = b"\x89PNG\r\n\x1a\n\x00\x00" if method == "PUT" else None
    if isinstance(body, str):
        data, body = body.encode(), None
    answer = call(worker, method, path, mine["owner"], body, data=data, headers=headers)
    assert answer.status == 400 and answer.error.startswith(reason), answer.body


def _fresh_upload(worker: WorkerProcess, owner: str) -> str:
    answer = call(worker, "POST", "/uploads", owner, {"size": 10, "content_type": "image/png"})
    return str(answer.body["upload_id"])


def test_a_story_post_is_validated_before_the_upload_is_taken(
    worker: WorkerProcess, mine: dict[str, str]
) -> None:
    gina, upload = mine["owner"], mine["u"]
    bad = call(worker, "POST", "/stories", gina, {"upload_id": upload, "hashtags": [""]})
    assert bad.status == 400 and bad.error.startswith("hashtags.0: "), bad.body
    good = call(worker, "POST", "/stories", gina, {"upload_id": upload, "hashtags": ["ok"]})
    assert good.status == 202 and good.body["story_id"] == upload, good.body
    again = call(worker, "POST", "/stories", gina, {"upload_id": upload, "hashtags": ["ok"]})
    assert again.body == good.body  # the same events sent again: duplicates downstream
    other = call(worker, "POST", "/stories", gina, {"upload_id": upload, "hashtags": ["no"]})
    assert other.status == 409, other.body
    unfinished = _fresh_upload(worker, gina)
    early = call(worker, "POST", "/stories", gina, {"upload_id": unfinished})
    assert (early.status, early.headers["Upload-Offset"]) == (409, "0")


def test_oversized_requests_are_413(worker: WorkerProcess, mine: dict[str, str]) -> None:
    gina = mine["owner"]
    views = {"views": [{"story_id": mine["s"], "viewed_at": "2026-11-22T10:00:00.000Z" + " " * 600}
                       for _ in range(450)]}  # fmt: skip
    assert call(worker, "POST", "/views:batch", gina, views).status == 413  # past 256 KiB
    huge = call(worker, "POST", "/uploads", gina, {"size": 201 * 1024 * 1024,
                                                    "content_type": "video/mp4"})  # fmt: skip
    assert huge.status == 413 and huge.error.startswith("size: file too large"), huge.body
    upload = _fresh_upload(worker, gina)
    chunk = call(worker, "PUT", f"/uploads/{upload}", gina, data=b"x",
                 headers={"Content-Range": f"bytes 0-{65 * 2**20}/{66 * 2**20}"})  # fmt: skip
    assert chunk.status == 413, chunk.body


def test_what_is_not_an_image_or_video_is_415_and_dropped(
    worker: WorkerProcess, mine: dict[str, str]
) -> None:
    gina = mine["owner"]
    upload = _fresh_upload(worker, gina)
    answer = call(worker, "PUT", f"/uploads/{upload}", gina, data=b"%PDF-1.7\n\n",
                  headers={"Content-Range": "bytes 0-9/10"})  # fmt: skip
    assert answer.status == 415 and answer.error.startswith("content: "), answer.body
    assert call(worker, "HEAD", f"/uploads/{upload}", gina).status == 404


def test_a_chunk_past_the_upload_is_409_with_where_it_stands(
    worker: WorkerProcess, mine: dict[str, str]
) -> None:
    gina = mine["owner"]
    upload = _fresh_upload(worker, gina)
    answer = call(worker, "PUT", f"/uploads/{upload}", gina, data=b"12345",
                  headers={"Content-Range": "bytes 5-9/10"})  # fmt: skip
    assert (answer.status, answer.headers["Upload-Offset"]) == (409, "0"), answer.body


def test_the_same_idempotency_key_twice_changes_nothing(
    worker: WorkerProcess, settings: Settings
) -> None:
    hank, ivy, jo, kim = user("hank"), user("ivy"), user("jo"), user("kim")
    story = f"idem-{TAG}"
    post_ready_story(settings, story, hank, audience="public")
    wait_for(lambda: visible(worker, story, hank), 30, "hank's story")
    path = f"/stories/{story}"
    keyed = {"Idempotency-Key": f"view-{TAG}"}
    first = call(worker, "POST", f"{path}/views", ivy, headers=keyed)
    second = call(worker, "POST", f"{path}/views", ivy, headers=keyed)
    assert first.status == second.status == 202
    assert first.body == second.body == {"event_id": f"view-{TAG}"}
    batch = {"views": [{"story_id": story}, {"story_id": story}]}
    batch_key = {"Idempotency-Key": f"batch-{TAG}"}
    sent = [call(worker, "POST", "/views:batch", jo, batch, headers=batch_key) for _ in range(2)]
    assert sent[0].body == sent[1].body and len(set(sent[0].body["event_ids"])) == 2
    react = {"Idempotency-Key": f"react-{TAG}"}
    for _ in range(2):
        assert call(worker, "POST", f"{path}/reactions", ivy, {"reaction": "love"},
                    headers=react).status == 202  # fmt: skip
    # Without a key, two views are two events; kim's comes last, so once it is counted
    # everything before it on the story's partition is too.
    assert call(worker, "POST", f"{path}/views", kim).status == 202
    counts = wait_for(lambda: (v := call(worker, "GET", f"{path}/views", hank).body)
                      ["unique_viewers"] == 3 and v, 30, "kim's view counted")  # fmt: skip
    assert counts["total_views"] == 4  # ivy once, jo's batch of two once, kim
    reactions = call(worker, "GET", f"{path}/reactions", hank).body
    assert (reactions["counts"], reactions["total"]) == ({"love": 1}, 1)


def test_over_the_rate_is_429_with_retry_after(tight: WorkerProcess) -> None:
    liz = user("liz")
    answers = [call(tight, "POST", f"/follow/{user('x')}{i}", liz) for i in range(3)]
    assert [a.status for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].error.startswith("too many write requests")
    assert call(tight, "POST", f"/follow/{user('x')}", user("max")).status == 202  # per user
    assert call(tight, "GET", "/stories/none", liz).status == 404  # reads are not limited


def test_a_full_producer_queue_is_503_with_retry_after(tight: WorkerProcess) -> None:
    batch = {"views": [{"story_id": "s1"}, {"story_id": "s2"}]}  # two records, room for one
    answer = call(tight, "POST", "/views:batch", user("ned"), batch)
    assert answer.status == 503 and answer.headers["Retry-After"] == "1", answer.body
    assert "queue is full" in answer.error
    assert call(tight, "POST", "/stories/s1/views", user("ned")).status == 202  # one fits


def test_an_upload_begun_on_one_worker_is_resumed_on_another(
    worker: WorkerProcess, tight: WorkerProcess
) -> None:
    olga = user("olga")
    data = jpeg(300, 200)
    size = len(data)
    upload = call(worker, "POST", "/uploads", olga, {"size": size, "content_type": "image/jpeg"})
    path = f"/uploads/{upload.body['upload_id']}"
    half = size // 2
    first = call(worker, "PUT", path, olga, data=data[:half],
                 headers={"Content-Range": f"bytes 0-{half - 1}/{size}"})  # fmt: skip
    assert first.body["offset"] == half
    assert call(tight, "HEAD", path, olga).headers["Upload-Offset"] == str(half)
    rest = call(tight, "PUT", path, olga, data=data[half:],
                headers={"Content-Range": f"bytes {half}-{size - 1}/{size}"})  # fmt: skip
    assert rest.body["complete"] and rest.body["offset"] == size
    assert call(worker, "HEAD", path, olga).headers["Upload-Offset"] == str(size)
