"""One client for OpenAI-compatible chat completions (vLLM, SGLang, Ollama, llama.cpp, OpenAI).

Retries with exponential backoff on 429, 5xx and connection errors, and timeouts, are the `openai`
library's own (`max_retries`, `timeout`); the number of requests in flight is bounded by the caller.
The API key comes from an environment variable and is never logged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..config import ConfigError


@dataclass(frozen=True)
class Endpoint:
    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"

    def describe(self) -> str:
        return f"{self.model} at {self.url}"


class ChatClient:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 300.0,
        max_retries: int = 4,
        temperature: float = 0.2,
        max_tokens: int = 1024,
    ) -> None:
        if not endpoint.url or not endpoint.model:
            raise ConfigError("a captioning endpoint needs both a URL and a model name")
        # local servers accept any key; a hosted API needs the variable set
        from openai import AsyncOpenAI  # imported when captioning runs, not with the CLI

        api_key = os.environ.get(endpoint.api_key_env) or "EMPTY"
        self.endpoint = endpoint
        self.temperature, self.max_tokens = temperature, max_tokens
        self._client = AsyncOpenAI(base_url=endpoint.url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    async def complete(self, messages: list[dict]) -> tuple[str | None, float]:
        """The answer's text (None when the server returned no content) and the seconds it took."""
        started = time.perf_counter()
        response = await self._client.chat.completions.create(
            model=self.endpoint.model,
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        text = response.choices[0].message.content if response.choices else None
        return text, time.perf_counter() - started

    async def close(self) -> None:
        await self._client.close()
