"""Going on with masked content: put a guard's masked strings back where the originals were. No I/O.

A guard that masks (Palo Alto's DLP masking, `LocalGuard`) returns `Verdict.masked`: a `Content` of
the same shape as the one checked, with the sensitive spans replaced. A shell that lets the call go
on masked must rewrite what the app (or the LLM) will read: the request body, the function's
arguments, the response. Each does it the same way:

1. `replacements`: pair every string of the checked content with its masked counterpart (they
   come in the same order from `Content.iter_texts`); only the strings that changed matter;
2. `replace_strings`: rebuild the call's data (JSON, arguments) with those strings replaced, at
   any depth of dicts, lists and tuples;
3. read the rebuilt data again the way it was read for the check, and compare: only when the
   reading gives exactly the masked strings does the call go on. Anything else (a string the
   extractor built by joining others, an object the rewrite cannot enter, a query string, a body
   that is not JSON) leaves the Block standing: content is never forwarded unmasked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._models import Content

__all__ = ["mask_json", "masked_text_content", "replace_strings", "replacements", "same_texts"]


def replacements(original: Content, masked: Content) -> dict[str, str] | None:
    """The strings of `original` that `masked` changed, each with its masked form.

    None when the two do not line up (not the same number of strings), or when one original
    string was masked two different ways (no single rewrite can hold both).
    """
    before = list(original.iter_texts())
    after = list(masked.iter_texts())
    if len(before) != len(after):
        return None
    pairs: dict[str, str] = {}
    for old, new in zip(before, after, strict=True):
        if old != new and pairs.setdefault(old, new) != new:
            return None
    return pairs


def replace_strings(value: Any, pairs: Mapping[str, str]) -> Any:
    """`value` with every string in `pairs` replaced, inside dicts, lists and tuples (new
    containers; keys are kept). Other objects are returned as they are."""
    if not pairs:
        return value
    if isinstance(value, str):
        return pairs.get(value, value)
    if isinstance(value, dict):
        return {key: replace_strings(item, pairs) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_strings(item, pairs) for item in value]
    if isinstance(value, tuple):
        return tuple(replace_strings(item, pairs) for item in value)
    return value


def same_texts(content: Content | None, masked: Content) -> bool:
    """Whether re-reading the rewritten call gives exactly the masked strings."""
    return content is not None and list(content.iter_texts()) == list(masked.iter_texts())


def mask_json(body: bytes, original: Content, masked: Content) -> bytes | None:
    """A UTF-8 JSON body with the masked strings in place of the originals, or None.

    None when the body is not UTF-8 JSON (re-encoding another charset would change what the app
    reads beyond the masked spans) or the contents do not line up. The caller still re-reads the
    result (`same_texts`) before using it.
    """
    pairs = replacements(original, masked)
    if pairs is None:
        return None
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return json.dumps(replace_strings(data, pairs), ensure_ascii=False).encode("utf-8")


def masked_text_content(content: Content, masked_text: str) -> Content | None:
    """`content` with its strings replaced by a masked copy of `Content.as_text` (same length).

    A guard that scans the strings of a content joined by newlines (Palo Alto) masks that one
    text; with same-length masking the joined text splits back into the strings at the same
    places. None when it does not (another length, a newline masked away).
    """
    texts = list(content.iter_texts())
    if len(masked_text) != sum(map(len, texts)) + max(len(texts) - 1, 0):
        return None
    if content.text is not None and content.messages is None and content.completion is None:
        return content.model_copy(update={"text": masked_text})
    segments: list[str] = []
    start = 0
    for index, text in enumerate(texts):
        end = start + len(text)
        segments.append(masked_text[start:end])
        if index < len(texts) - 1 and masked_text[end : end + 1] != "\n":
            return None
        start = end + 1
    pairs: dict[str, str] = {}
    for old, new in zip(texts, segments, strict=True):
        if old != new and pairs.setdefault(old, new) != new:
            return None
    rebuilt = content.model_copy(
        update={
            "text": pairs.get(content.text, content.text) if content.text is not None else None,
            "messages": replace_strings(content.messages, pairs),
            "completion": replace_strings(content.completion, pairs),
        }
    )
    return rebuilt if list(rebuilt.iter_texts()) == segments else None
