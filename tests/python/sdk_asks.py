"""Answers what a downstream asks of the client, through capgate, with the official Python MCP
SDK (PyPI `mcp`): form elicitation, sampling and log messages.

Usage: sdk_asks.py URL TOKEN ANSWER
Sets the session's log level to `warning`, calls `flaky__debug_elicit` (answering ANSWER),
`flaky__debug_sample` (answering "sampled:" + the prompt) and `flaky__debug_log`, and prints one
JSON document with what the client was asked, what each call returned and the log messages it
received. The Rust test that runs this asserts on it.
"""

import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def main(url: str, token: str, answer: str) -> None:
    asked = {"elicitations": [], "samplings": [], "logs": []}

    async def on_elicit(context, params):
        asked["elicitations"].append(params.message)
        return types.ElicitResult(action="accept", content={"answer": answer})

    async def on_sample(context, params):
        prompt = " ".join(
            m.content.text for m in params.messages if getattr(m.content, "type", "") == "text"
        )
        asked["samplings"].append(prompt)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled: {prompt}"),
            model="test-model",
        )

    async def on_log(params):
        asked["logs"].append({"level": params.level, "data": params.data})

    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http_client:
        async with streamable_http_client(url, http_client=http_client) as streams:
            read_stream, write_stream = streams[0], streams[1]
            async with ClientSession(
                read_stream,
                write_stream,
                sampling_callback=on_sample,
                elicitation_callback=on_elicit,
                logging_callback=on_log,
            ) as session:
                init = await session.initialize()
                await session.set_logging_level("warning")
                elicited = await session.call_tool("flaky__debug_elicit", {"message": "Your answer?"})
                sampled = await session.call_tool("flaky__debug_sample", {"message": "Say hello"})
                logged = await session.call_tool("flaky__debug_log", {})
                # Log notifications travel on the session's own stream: wait until two arrived
                # (the ones at or above `warning`), or a short bound passes.
                for _ in range(200):
                    if len(asked["logs"]) >= 2:
                        break
                    await asyncio.sleep(0.01)
                print(
                    json.dumps(
                        {
                            "capabilities": init.capabilities.model_dump(exclude_none=True),
                            "asked": asked,
                            "elicited": {"is_error": bool(elicited.is_error), "text": text_of(elicited)},
                            "sampled": {"is_error": bool(sampled.is_error), "text": text_of(sampled)},
                            "logged": {"is_error": bool(logged.is_error), "text": text_of(logged)},
                        }
                    )
                )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
