"""The masking core: lining up masked strings, rewriting data, the judge's masked outcome, the emulator's masks."""

from __future__ import annotations

import httpx
import pytest

from guardrails import Action, Blocked, Content, Decision, Verdict
from guardrails._judge import Judge
from guardrails._masking import mask_json, masked_text_content, replace_strings, replacements
from tests.helpers import PANW_KEY

SENSITIVE = frozenset({"sensitive_data"})


def masked_verdict(masked: Content, categories: frozenset[str] = SENSITIVE) -> Verdict:
    return Verdict(action=Action.BLOCK, guard="g", categories=categories, masked=masked)  # type: ignore[arg-type]


def test_replacements_pair_the_changed_strings() -> None:
    """Only strings the mask changed are paired, in order."""
    original = Content(messages=[{"role": "user", "content": "card 4111"}, {"role": "user", "content": "hi"}])
    masked = Content(messages=[{"role": "user", "content": "card XXXX"}, {"role": "user", "content": "hi"}])
    assert replacements(original, masked) == {"card 4111": "card XXXX"}


def test_replacements_refuse_contents_that_do_not_line_up() -> None:
    """Another number of strings, or one string masked two ways, cannot be rewritten."""
    assert (
        replacements(Content("a"), Content(messages=[{"role": "user", "content": "a"}, {"content": "b"}]))
        is None
    )
    original = Content(messages=[{"content": "4111"}, {"content": "4111"}])
    assert replacements(original, Content(messages=[{"content": "XXXX"}, {"content": "4XXX"}])) is None


def test_replace_strings_reaches_nested_containers_only() -> None:
    """dicts, lists and tuples are rebuilt; keys and other objects are left alone."""
    marker = object()
    value = {"4111": ["4111", ("4111", marker)], "n": 4111}
    assert replace_strings(value, {"4111": "XXXX"}) == {"4111": ["XXXX", ("XXXX", marker)], "n": 4111}


def test_mask_json_refuses_what_is_not_utf8_json() -> None:
    """A body that is not UTF-8 JSON is not rewritten (None)."""
    original, masked = Content("card 4111"), Content("card XXXX")
    assert mask_json(b'{"q": "card 4111"}', original, masked) == b'{"q": "card XXXX"}'
    assert mask_json(b"card 4111", original, masked) is None
    assert mask_json('{"q": "card 4111"}'.encode("utf-16"), original, masked) is None


def test_masked_text_content_splits_a_joined_mask_back() -> None:
    """A same-length mask of the newline-joined strings goes back into each message."""
    content = Content(
        messages=[{"role": "user", "content": "ssn 123-45-6789"}, {"role": "user", "content": "ok"}]
    )
    rebuilt = masked_text_content(content, "ssn XXXXXXXXXXX\nok")
    assert rebuilt is not None
    assert rebuilt.messages == [
        {"role": "user", "content": "ssn XXXXXXXXXXX"},
        {"role": "user", "content": "ok"},
    ]
    assert masked_text_content(content, "ssn XXXXXXXXXXXXok") is None  # the separator masked away
    assert masked_text_content(content, "short") is None


def test_the_judge_records_masked_when_the_shell_rewrote() -> None:
    """mask callback True: outcome masked, the verdict returned; False: the Block stands."""
    seen: list[Decision] = []
    judge = Judge("f", hooks=(seen.append,))
    verdict = masked_verdict(Content("XXXX"))
    assert judge.settle(verdict, mask=lambda masked: masked.text == "XXXX") is verdict
    with pytest.raises(Blocked):
        judge.settle(verdict, mask=lambda masked: False)
    assert [d.outcome for d in seen] == ["masked", "blocked"]


def test_the_judge_masks_sensitive_data_only() -> None:
    """A Block with another category next to sensitive data is never masked."""
    judge = Judge("f")
    called: list[Content] = []

    def rewrite(masked: Content) -> bool:
        called.append(masked)
        return True

    verdict = masked_verdict(Content("XXXX"), frozenset({"sensitive_data", "prompt_attack"}))
    with pytest.raises(Blocked):
        judge.settle(verdict, mask=rewrite)
    assert called == []


def test_block_lets_other_categories_through_but_not_uncategorised_blocks() -> None:
    """block={"prompt_attack"}: harmful content is monitored; a Block with no category blocks."""
    seen: list[Decision] = []
    judge = Judge("f", hooks=(seen.append,), block={"prompt_attack"})
    harmful = Verdict(action=Action.BLOCK, guard="g", categories=frozenset({"harmful_content"}))
    assert judge.settle(harmful) is harmful
    with pytest.raises(Blocked):
        judge.settle(Verdict(action=Action.BLOCK, guard="g"))
    with pytest.raises(Blocked):
        judge.settle(
            Verdict(action=Action.BLOCK, guard="g", categories=frozenset({"prompt_attack", "other"}))
        )
    assert [d.outcome for d in seen] == ["monitored", "blocked", "blocked"]


def test_the_emulator_masks_for_masking_profiles_only(emulator_url: str) -> None:
    """A dlp-mask profile answers prompt_masked_data (same length, X fill, locations); others do not."""

    def scan(profile: str) -> dict[str, object]:
        response = httpx.post(
            f"{emulator_url}/v1/scan/sync/request",
            headers={"x-pan-token": PANW_KEY},
            json={
                "ai_profile": {"profile_name": profile},
                "contents": [{"prompt": "pay 4111 1111 1111 1111 now"}],
            },
        )
        data: dict[str, object] = response.json()
        return data

    masked = scan("dlp-mask")
    assert masked["prompt_masked_data"] == {
        "data": "pay XXXXXXXXXXXXXXXXXXX now",
        "pattern_detections": [{"pattern": "credit-card", "locations": [[4, 23]]}],
    }
    assert "prompt_masked_data" not in scan("default")
