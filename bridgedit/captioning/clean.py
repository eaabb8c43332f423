"""Turning an LLM's answer into a caption or a label list: strip echoed labels, quotes and markdown."""

from __future__ import annotations

import json
import re


class CaptionError(ValueError):
    """An answer that is not a usable caption (empty, or nothing left after cleaning)."""


_LEADING_LABEL = re.compile(
    r"^\s*(?:\*\*)?\s*(?:final\s+)?(?:audio|video|omni)?\s*(?:caption|labels?|prompt|output|answer)(?:\s+for\s+[\w\s]+)?"
    r"\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’"


def _strip_markdown(text: str) -> str:
    text = re.sub(r"```[a-zA-Z]*\n?|```", "", text)  # code fences
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)  # headings
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", text, flags=re.MULTILINE)  # bullets
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)  # bold
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)", r"\1", text)  # italics
    return text


def clean_caption(answer: str | None) -> str:
    """One clean paragraph; raises CaptionError when nothing usable is left."""
    if answer is None or not answer.strip():
        raise CaptionError("empty answer")
    text = _strip_markdown(answer.strip())
    previous = None
    while previous != text:  # labels and quotes can be nested: **Audio Caption:** "..."
        previous = text
        text = _LEADING_LABEL.sub("", text, count=1).strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise CaptionError(f"no caption left after cleaning the answer {answer[:80]!r}")
    return text


def parse_labels(answer: str | None) -> list[str]:
    """Labels from a comma-separated line, a JSON-like list, or bullets; raises CaptionError when none."""
    if answer is None or not answer.strip():
        raise CaptionError("empty answer")
    text = _LEADING_LABEL.sub("", _strip_markdown(answer.strip())).strip()
    match = re.search(r"\[.*\]", text, flags=re.DOTALL)
    labels: list[str] = []
    if match:
        try:
            parsed = json.loads(match.group(0))
            labels = [str(item) for item in parsed] if isinstance(parsed, list) else []
        except json.JSONDecodeError:
            labels = match.group(0)[1:-1].split(",")
    if not labels:
        labels = re.split(r"[,\n;]", text)
    cleaned, seen = [], set()
    for label in labels:
        label = label.strip().strip(_QUOTES).strip().rstrip(".").strip()
        if label and label.lower() not in seen:
            seen.add(label.lower())
            cleaned.append(label)
    if not cleaned:
        raise CaptionError(f"no labels in the answer {answer[:80]!r}")
    return cleaned
