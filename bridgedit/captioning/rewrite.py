"""One prompt made into two captions: an LLM writes a purely visual T_V and a purely auditory T_A from a user's prompt.

The paper's towers read separate captions (§3.2; Table 3: a shared caption confuses both). At generation time a
user has one short prompt; this asks any OpenAI-compatible server (the client `bridgedit caption` uses) to write the
two, following HVGC's stages in one request: the sound-making objects and events first (as stage 2 extracts them),
then the video caption (stage 1's visual-only style, sound told by its visible cause), then the audio caption
(stage 3's single co-existing soundscape, no visual words). The answer must be JSON with both captions non-empty;
an unusable answer is asked again, then reported. Answers are cached per prompt, model and prompt version, in an
append-only JSONL file that survives kills.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..jsonl import append_jsonl, read_jsonl
from .clean import CaptionError
from .client import ChatClient, Endpoint

REWRITE_VERSION = "rewrite-1"  # change it with the prompt below: cached answers of another version are not reused

# ours (the paper gives no prompt for this): HVGC's three stages, in one request, for a user's short prompt
REWRITE_PROMPT = """You write prompts for two generative models that together make a short sounding video: a text-to-video model that sees only a video caption, and a text-to-audio model that sees only an audio caption.
From the user's idea below, work in three steps:
1. Audio labels: list the objects or events in the scene that produce sound, as short keywords (e.g. "Hammer", "Sparks").
2. Video caption: one dense paragraph for the text-to-video model, purely visual: the scene and atmosphere, the subjects with specific visual adjectives, their actions and the camera, the visual style and lighting. Do NOT describe sound itself; describe the physical actions that create it (impacts, collisions, mouth and throat movements, surfaces rubbing, forces acting on the environment).
3. Audio caption: one concise sentence for the text-to-audio model, purely auditory: the sounds of the labels and their qualities as a single co-existing soundscape. Do not mention anything visual and do not use temporal words such as "first", "then" or "followed by".
Answer with JSON only, in this form:
{"audio_labels": ["..."], "video_caption": "...", "audio_caption": "..."}
User's idea: {prompt}"""


@dataclass(frozen=True)
class Captions:
    video: str
    audio: str


def render_rewrite(prompt: str) -> str:
    return REWRITE_PROMPT.replace("{prompt}", prompt)


def parse_rewrite(answer: str | None) -> Captions:
    """Both captions from the model's answer: a JSON object (a Markdown code fence around it allowed) with non-empty
    "video_caption" and "audio_caption" strings; CaptionError otherwise."""
    if not answer or not answer.strip():
        raise CaptionError("empty answer")
    match = re.search(r"\{.*\}", answer, flags=re.DOTALL)  # the object, whatever fence or words surround it
    try:
        data = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise CaptionError(f"not a JSON object: {answer[:80]!r}")
    captions = [data.get("video_caption"), data.get("audio_caption")]
    if not all(isinstance(c, str) and c.strip() for c in captions):
        raise CaptionError("the answer lacks a non-empty video_caption or audio_caption")
    return Captions(video=captions[0].strip(), audio=captions[1].strip())


class RewriteFailed(ConfigError):
    """No usable captions after every attempt; the message names the prompt and the last problem."""


class Rewriter:
    """Rewrites prompts through one server, with a cache file (None: no cache)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        cache: str | Path | None = None,
        attempts: int = 3,
        timeout: float = 120.0,
        retries: int = 2,
    ) -> None:
        if attempts < 1:
            raise ConfigError("attempts must be positive")
        self.endpoint, self.attempts = endpoint, attempts
        self.client_settings = {"timeout": timeout, "max_retries": retries}
        self.cache = Path(cache) if cache is not None else None
        self._cached = {}
        if self.cache is not None and self.cache.is_file():
            for record in read_jsonl(self.cache):
                key = (record["prompt"], record["model"], record["version"])
                self._cached[key] = Captions(record["video_prompt"], record["audio_prompt"])

    def _key(self, prompt: str) -> tuple[str, str, str]:
        return prompt, self.endpoint.model, REWRITE_VERSION

    def cached(self, prompt: str) -> Captions | None:
        return self._cached.get(self._key(prompt))

    def rewrite(self, prompts: list[str]) -> list[Captions]:
        """Captions for every prompt, the cached ones without a request."""
        missing = sorted({p for p in prompts if self.cached(p) is None})
        if missing:
            asyncio.run(self._ask_all(missing))
        return [self.cached(p) for p in prompts]

    async def _ask_all(self, prompts: list[str]) -> None:
        client = ChatClient(self.endpoint, **self.client_settings)
        try:
            for prompt in prompts:
                captions = await self._ask(client, prompt)
                self._cached[self._key(prompt)] = captions
                if self.cache is not None:
                    append_jsonl(
                        self.cache,
                        {
                            "prompt": prompt,
                            "model": self.endpoint.model,
                            "version": REWRITE_VERSION,
                            "video_prompt": captions.video,
                            "audio_prompt": captions.audio,
                        },
                    )
        finally:
            await client.close()

    async def _ask(self, client: ChatClient, prompt: str) -> Captions:
        import openai

        messages = [{"role": "user", "content": render_rewrite(prompt)}]
        last = "no attempt"
        for _ in range(self.attempts):
            try:
                text, _ = await client.complete(messages)
                return parse_rewrite(text)
            except CaptionError as error:
                last = str(error)
            except openai.APIConnectionError:
                raise RewriteFailed(f"cannot reach the rewrite server at {self.endpoint.url}") from None
            except openai.OpenAIError as error:
                last = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise RewriteFailed(
            f"no usable captions for {prompt[:60]!r} from {self.endpoint.describe()} after "
            f"{self.attempts} attempts: {last}"
        )
