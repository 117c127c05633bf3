"""``RequestOnlyRoute``: the endpoint called straight when it takes the request alone, FastAPI's own
handler whenever the route has anything FastAPI must run (a dependency added later runs, and shows
in OpenAPI)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi import routing as fastapi_routing
from fastapi.testclient import TestClient
from starlette.responses import Response

from chain.service.web import RequestOnlyRoute


def app_with(router: APIRouter) -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


def test_an_endpoint_taking_the_request_alone_skips_fastapis_dependency_solving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = APIRouter(route_class=RequestOnlyRoute)

    @router.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json", status_code=201)

    client = app_with(router)

    async def refuse(**_: object) -> None:
        raise AssertionError("FastAPI's handler ran")

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", refuse)
    answer = client.post("/echo", content=b'{"a": 1}')
    assert (answer.status_code, answer.content) == (201, b'{"a": 1}')


def test_a_dependency_added_to_such_a_route_runs_and_is_documented() -> None:
    seen: list[str] = []

    def tenant(x_tenant: str = Header()) -> str:
        seen.append(x_tenant)
        return x_tenant

    for router in (
        APIRouter(route_class=RequestOnlyRoute, dependencies=[Depends(tenant)]),  # the router's
        APIRouter(route_class=RequestOnlyRoute),  # the route's
    ):
        dependencies = [] if router.dependencies else [Depends(tenant)]

        @router.post("/echo", dependencies=dependencies)
        async def echo(request: Request) -> Response:
            return Response(b"{}", media_type="application/json")

        client = app_with(router)
        assert client.post("/echo", headers={"X-Tenant": "acme"}).status_code == 200
        assert client.post("/echo").status_code == 422  # FastAPI's handler: the header is required
        parameters = client.get("/openapi.json").json()["paths"]["/echo"]["post"]["parameters"]
        assert [p["name"] for p in parameters] == ["x-tenant"]
    assert seen == ["acme", "acme"]


def test_other_parameters_and_plain_functions_keep_fastapis_handler() -> None:
    router = APIRouter(route_class=RequestOnlyRoute)

    @router.get("/items/{item}")
    async def item(request: Request, item: int) -> Response:
        return Response(str(item * 2))

    @router.get("/plain")
    def plain(request: Request) -> Response:  # FastAPI runs it in a thread
        return Response("plain")

    client = app_with(router)
    assert client.get("/items/21").text == "42"
    assert client.get("/items/x").status_code == 422
    assert client.get("/plain").text == "plain"


def test_an_endpoint_that_returns_no_response_is_a_server_error() -> None:
    router = APIRouter(route_class=RequestOnlyRoute)

    @router.get("/dict")
    async def not_a_response(request: Request) -> dict[str, int]:
        return {"a": 1}

    assert app_with(router).get("/dict").status_code == 500
