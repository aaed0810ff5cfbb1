"""Drives capgate with the official Python MCP SDK (PyPI `mcp`).

Usage: sdk_client.py URL TOKEN
Prints one JSON document: the tool names the SDK listed, the result of an allowed call and the
result of a denied (cross-tenant) call. The Rust test that runs this asserts on it.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def main(url: str, token: str) -> None:
    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http_client:
        async with streamable_http_client(url, http_client=http_client) as streams:
            read_stream, write_stream = streams[0], streams[1]
            async with ClientSession(read_stream, write_stream) as session:
                await session.initialize()
                tools = await session.list_tools()
                allowed = await session.call_tool("case__read_case", {"case_id": "case-101"})
                denied = await session.call_tool("case__read_case", {"case_id": "case-201"})
                print(
                    json.dumps(
                        {
                            "tools": sorted(tool.name for tool in tools.tools),
                            "allowed": {"is_error": bool(allowed.is_error), "text": text_of(allowed)},
                            "denied": {"is_error": bool(denied.is_error), "text": text_of(denied)},
                        }
                    )
                )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
