"""A small Anthropic Messages API server for tests: ``POST /v1/messages``, streamed or whole."""

from __future__ import annotations

import json
from typing import Any

from fakehttp import Handler, Recorded, Reply, ScriptedServer, thirds, words


class FakeAnthropic(ScriptedServer):
    """The Messages endpoint; scripted like :class:`fake_openai.FakeOpenAI`."""

    def route(self, path: str) -> bool:
        return path == "/v1/messages"

    def error_body(self, reply: Reply) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "fake_error", "message": reply.error}}

    def respond(self, handler: Handler, request: Recorded, reply: Reply) -> None:
        model = reply.model or request.body.get("model", "fake-claude")
        ids = self.call_ids(reply)
        prompt, completion = reply.usage or (len(json.dumps(request.body["messages"]).split()), 5)
        stop = "tool_use" if reply.tool_calls else "end_turn"
        blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.content}] if reply.content else []
        blocks += [
            {"type": "tool_use", "id": id_, "name": name, "input": args}
            for id_, (name, args) in zip(ids, reply.tool_calls, strict=True)
        ]
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }
        if not request.body.get("stream"):
            handler.send_json(200, message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        }
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        for index, block in enumerate(blocks):
            events += self._block_events(index, block)
        finish = {"stop_reason": stop, "stop_sequence": None}
        events += [
            {"type": "message_delta", "delta": finish, "usage": {"output_tokens": completion}},
            {"type": "message_stop"},
        ]
        failure = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        handler.send_events([(e["type"], json.dumps(e)) for e in events], reply, json.dumps(failure))

    @staticmethod
    def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block["type"] == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in words(block["text"])]
        else:
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in thirds(json.dumps(block["input"]))]
        return [
            {"type": "content_block_start", "index": index, "content_block": opening},
            *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
            {"type": "content_block_stop", "index": index},
        ]
