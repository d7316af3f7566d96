"""trainModel, recommendationModels and promoteModel over real HTTP: the job queued after commit
and its task polled, typed promotion errors that change nothing, and denials (shopper tokens, a
missing scope)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from api.ids import encode_id
from domain.db import Database
from domain.recommend.models import ModelVersion
from domain.settings import Settings
from domain.sql import table
from domain.tasks.models import TaskRun
from domain.users.models import Customer
from tests.conftest import Api, error_codes
from tests.me.helpers import shopper_token
from tests.recommend.models_world import fast, seed

OPS = "models:write jobs:read"

TRAIN = """mutation($input: TrainModelInput) {
  trainModel(input: $input) { queued task { id kind status } errors { code field message } }
}"""
TASK = "query($id: ID!) { task(id: $id) { status done total result error } }"
LIST = """query($status: ModelStatus, $first: Int! = 20, $after: String) {
  recommendationModels(status: $status, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id number status algorithm interactions users items ndcgAt10 metrics parameters
            error sha256 trainedSeconds promotedAt promotedBy dataFrom dataTo }
  }
}"""
PROMOTE = """mutation($input: PromoteModelInput!) {
  promoteModel(input: $input) {
    forced
    version { id number status promotedBy }
    previous { number status }
    errors { code field message }
  }
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return fast(settings)


async def train(api: Api) -> dict[str, Any]:
    body = await api.gql(TRAIN, {"input": {"reason": "test"}}, scopes=OPS)
    assert "errors" not in body, body
    payload = body["data"]["trainModel"]
    await api.app.state.services.queue.drain()
    task = await api.gql(TASK, {"id": payload["task"]["id"]}, scopes=OPS)
    return {**payload, "after": task["data"]["task"]}


async def listing(api: Api, **variables: Any) -> dict[str, Any]:
    body = await api.gql(LIST, variables, scopes=OPS)
    assert "errors" not in body, body
    return body["data"]["recommendationModels"]  # type: ignore[no-any-return]


async def statuses(db: Database) -> list[tuple[int, str]]:
    async with db.read_only() as session:
        t = table(ModelVersion)
        return [(int(i), str(s)) for i, s in await session.execute(select(t.c.id, t.c.status))]


async def test_train_list_promote_refuse_and_force(api: Api, db: Database) -> None:
    await seed(db)
    # Train: a task is returned, the job runs after the commit, the task reports the version.
    first = await train(api)
    assert first["queued"] and first["task"]["kind"] == "refresh_model"
    assert first["task"]["status"] == "queued"
    done = first["after"]
    assert done["status"] == "done", done
    assert done["result"]["step"] == "done" and isinstance(done["result"]["ndcg@10"], float)
    page = await listing(api)
    assert page["totalCount"] == 1
    (v1,) = page["nodes"]
    assert v1["number"] == done["result"]["versionId"] and v1["status"] == "CANDIDATE"
    assert v1["algorithm"] == "popularity,itemknn,content" and v1["users"] == 60
    assert v1["ndcgAt10"] == v1["metrics"]["ndcg@10"] and len(v1["sha256"]) == 64
    assert v1["dataFrom"] and v1["dataTo"] and v1["trainedSeconds"] > 0
    # Promote it (nothing active before).
    body = await api.gql(PROMOTE, {"input": {"versionId": v1["id"]}}, scopes=OPS)
    out = body["data"]["promoteModel"]
    assert out["errors"] == [] and out["version"]["status"] == "ACTIVE"
    assert out["previous"] is None and out["forced"] is False
    # A second candidate, made worse than the active one.
    second = await train(api)
    vid = second["after"]["result"]["versionId"]
    async with db.unit_of_work() as session:
        row = await session.get(ModelVersion, vid)
        assert row is not None
        row.metrics = {**row.metrics, "ndcg@10": (v1["ndcgAt10"] or 0) - 0.05}
    (v2,) = (await listing(api, status="CANDIDATE"))["nodes"]
    before = await statuses(db)
    body = await api.gql(PROMOTE, {"input": {"versionId": v2["id"]}}, scopes=OPS)
    out = body["data"]["promoteModel"]
    assert out["version"] is None
    (err,) = out["errors"]
    assert err["code"] == "WORSE_THAN_ACTIVE" and err["field"] == ["input", "versionId"]
    assert f"{v1['ndcgAt10']:.4f}" in err["message"]
    assert f"{v1['ndcgAt10'] - 0.05:.4f}" in err["message"]
    assert await statuses(db) == before
    # Forced: it goes through and says so; the first is retired.
    body = await api.gql(PROMOTE, {"input": {"versionId": v2["id"], "force": True}}, scopes=OPS)
    out = body["data"]["promoteModel"]
    assert out["errors"] == [] and out["forced"] is True
    assert out["previous"] == {"number": v1["number"], "status": "RETIRED"}
    assert (await listing(api, status="ACTIVE"))["nodes"][0]["number"] == v2["number"]
    # Paging, newest first.
    page = await listing(api, first=1)
    assert page["nodes"][0]["number"] == v2["number"] and page["pageInfo"]["hasNextPage"]
    page = await listing(api, first=1, after=page["pageInfo"]["endCursor"])
    assert page["nodes"][0]["number"] == v1["number"] and not page["pageInfo"]["hasNextPage"]


async def test_promote_errors_change_nothing(api: Api, db: Database) -> None:
    await seed(db)
    done = await train(api)
    (v,) = (await listing(api))["nodes"]
    await api.gql(PROMOTE, {"input": {"versionId": v["id"]}}, scopes=OPS)
    before = await statuses(db)
    cases = [
        (encode_id("ModelVersion", 99_999), "NOT_FOUND"),
        (encode_id("User", 1), "INVALID_VALUE"),
        ("not-an-id", "INVALID_VALUE"),
        (v["id"], "NOT_CANDIDATE"),
    ]
    for vid, code in cases:
        body = await api.gql(PROMOTE, {"input": {"versionId": vid}}, scopes=OPS)
        out = body["data"]["promoteModel"]
        assert [e["code"] for e in out["errors"]] == [code], out
        assert out["version"] is None
    assert await statuses(db) == before
    assert done["after"]["status"] == "done"


async def test_training_on_empty_data_fails_and_the_active_version_stays(
    api: Api, db: Database
) -> None:
    await seed(db)
    await train(api)
    (v,) = (await listing(api))["nodes"]
    await api.gql(PROMOTE, {"input": {"versionId": v["id"]}}, scopes=OPS)
    async with db.unit_of_work() as session:
        await session.execute(delete(table(Customer)))
    failed = await train(api)
    assert failed["after"]["status"] == "failed"
    assert "no interactions" in failed["after"]["error"]
    assert failed["after"]["result"]["code"] == "EMPTY_DATA"
    nodes = (await listing(api))["nodes"]
    assert [n["status"] for n in nodes] == ["FAILED", "ACTIVE"]
    assert nodes[0]["error"] and nodes[0]["sha256"] is None
    assert nodes[1]["number"] == v["number"]


async def test_a_second_train_model_while_one_is_queued_returns_it(api: Api, db: Database) -> None:
    body = await api.gql(TRAIN, scopes=OPS)
    first = body["data"]["trainModel"]
    # Not drained yet: the first task is still queued or running.
    body = await api.gql(TRAIN, {"input": {}}, scopes=OPS)
    second = body["data"]["trainModel"]
    assert second["queued"] is False and second["task"]["id"] == first["task"]["id"]
    await api.app.state.services.queue.drain()


async def test_a_too_long_reason_is_refused_and_queues_nothing(api: Api, db: Database) -> None:
    body = await api.gql(TRAIN, {"input": {"reason": "x" * 501}}, scopes=OPS)
    out = body["data"]["trainModel"]
    assert out["task"] is None and out["queued"] is False
    assert [(e["code"], e["field"]) for e in out["errors"]] == [("TOO_LONG", ["input", "reason"])]
    async with db.read_only() as session:
        assert (await session.execute(select(table(TaskRun).c.id))).all() == []


async def test_shopper_tokens_and_missing_scopes_are_denied(api: Api, db: Database) -> None:
    await seed(db)
    shopper = await shopper_token(api, "c1")
    reader = await api.token("recommendations:read jobs:read")
    for token in (shopper, reader):
        for query, variables in (
            (TRAIN, {}),
            (LIST, {}),
            (PROMOTE, {"input": {"versionId": "x"}}),
        ):
            body = await api.gql(query, variables, token=token)
            assert error_codes(body) == ["FORBIDDEN"], body
    assert await statuses(db) == []
    async with db.read_only() as session:
        assert (await session.execute(select(table(TaskRun).c.id))).all() == []


async def test_train_model_on_a_real_arq_worker(
    db: Database, settings: Settings, redis_url: str, queue_name: str
) -> None:
    from tests.conftest import serve
    from tests.jobs.test_worker import run_worker

    await seed(db)
    async with serve(settings, redis_url=redis_url, queue_name=queue_name) as client:
        api = Api(client, db, None)
        body = await api.gql(TRAIN, {"input": {}}, scopes=OPS)
        task_id = body["data"]["trainModel"]["task"]["id"]
        # Queued on Redis: nothing ran in the API process
        assert await statuses(db) == []
        worker = await run_worker(db, redis_url, queue_name, settings)
        assert worker.jobs_complete == 1
        body = await api.gql(TASK, {"id": task_id}, scopes=OPS)
        task = body["data"]["task"]
        assert task["status"] == "done" and task["result"]["step"] == "done"
    assert await statuses(db) == [(task["result"]["versionId"], "candidate")]
