"""The HTTP server every service starts (`stepout_runtime.http.make_server`) against hostile clients:
a body larger than allowed or of unstated length, a head or a body sent slowly, a connection that
sends nothing; and an ordinary client, and a slow answer, left alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stepout_runtime.http import HEAD_MAX_BYTES, bound_port, make_server

HEAD_S = 1.0
BODY_S = 1.0
MAX_BODY = 1024
SLACK_S = 2.0  # a loaded machine's event loop may run a timer late


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the length of the body it read; `/slow` answers after two seconds."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(2 * HEAD_S)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    started = make_server(echo, "127.0.0.1", 0, max_body=MAX_BODY, head_s=HEAD_S, body_s=BODY_S)
    task = asyncio.create_task(started.serve())
    while not started.started:
        await asyncio.sleep(0.01)
    port = bound_port(started)
    assert port is not None
    yield "127.0.0.1", port
    started.should_exit = True
    await asyncio.wait_for(task, 10)


async def closed_after(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: bytes
) -> tuple[float, bytes]:
    """Send `trickle` one byte each 0.2 s until the server closes; the seconds that took, and what it
    said: its 408, or nothing when a byte of ours arrived as it closed (the close is then a reset)."""
    began, said = time.monotonic(), b""

    async def read_all() -> None:
        nonlocal said
        try:
            while chunk := await reader.read(4096):
                said += chunk
        except ConnectionError:
            pass  # reset: a byte sent as the server closed was never read

    reading = asyncio.create_task(read_all())
    try:
        for byte in trickle:
            if reading.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)
        await asyncio.wait_for(reading, 5 * HEAD_S)
    except ConnectionError:
        await asyncio.wait_for(reading, 5 * HEAD_S)
    finally:
        writer.close()
    return time.monotonic() - began, said


async def test_an_ordinary_request_is_answered_and_the_connection_kept(server: tuple[str, int]) -> None:
    host, port = server
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):
            answer = await client.post("/", content=b"x" * MAX_BODY)
            assert answer.status_code == 200 and answer.text == str(MAX_BODY)
        assert (await client.get("/")).text == "0"


async def test_a_body_larger_than_allowed_is_refused_with_413_before_it_is_read(server: tuple[str, int]) -> None:
    host, port = server
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        answer = await client.post("/", content=b"x" * (MAX_BODY + 1))
        assert answer.status_code == 413
        huge = await client.post("/", content=b"x" * (8 * 1024 * 1024))
        assert huge.status_code == 413
        assert (await client.post("/", content=b"fine")).text == "4"


async def test_a_body_of_unstated_length_is_refused_with_411(server: tuple[str, int]) -> None:
    host, port = server

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"

    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert (await client.post("/", content=chunks())).status_code == 411


async def test_a_head_bigger_than_allowed_is_refused(server: tuple[str, int]) -> None:
    host, port = server
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        try:
            answer = await client.get("/", headers={"x-big": "a" * (HEAD_MAX_BYTES + 1)})
        except httpx.HTTPError:
            return  # cut off while sending: refused as well
        assert answer.status_code in (400, 431)


@pytest.mark.parametrize("opening", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half a head"])
async def test_a_client_sending_its_head_slowly_is_cut_off_within_the_bound(
    server: tuple[str, int], opening: bytes
) -> None:
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(opening)
    took, said = await closed_after(reader, writer, b"X-Slow: " + b"a" * 100)
    assert took < HEAD_S + SLACK_S, f"still connected after {took:.1f} s"
    assert said == b"" or said.startswith(b"HTTP/1.1 408")


async def test_a_head_begun_and_never_finished_is_answered_408_within_the_bound(server: tuple[str, int]) -> None:
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    began = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    said = await asyncio.wait_for(reader.read(), 5 * HEAD_S)
    assert time.monotonic() - began < HEAD_S + SLACK_S
    assert said.startswith(b"HTTP/1.1 408") and said.endswith(b"the request came too slowly")
    writer.close()


async def test_a_client_sending_its_body_slowly_is_cut_off_within_the_bound(server: tuple[str, int]) -> None:
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    took, said = await closed_after(reader, writer, b"a" * 100)
    assert took < BODY_S + SLACK_S, f"still connected after {took:.1f} s"
    assert said == b"" or said.startswith(b"HTTP/1.1 408")


async def test_a_kept_alive_connection_trickling_its_next_head_is_cut_off(server: tuple[str, int]) -> None:
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await reader.readuntil(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    await reader.readexactly(1)  # its body, "0"
    took, said = await closed_after(reader, writer, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100)
    assert took < HEAD_S + SLACK_S, f"still connected after {took:.1f} s"
    assert said == b"" or said.startswith(b"HTTP/1.1 408")


async def test_a_slow_answer_is_not_cut_off(server: tuple[str, int]) -> None:
    host, port = server
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
        answer = await client.get("/slow")
        assert answer.status_code == 200
