"""Word (or character) error rate after the normalisation every score here uses."""

from __future__ import annotations

import re
import unicodedata

import jiwer

CHARACTER_SCORED_LANGUAGES = frozenset({"zh", "ja", "yue", "th", "lo", "my"})
"""Written without spaces between words: scored by characters (CER)."""


def normalize_text(text: str) -> str:
    """Lower case, hyphens and punctuation to spaces, apostrophes kept inside words."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[-‐‑‒–—_/]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    """WER, or CER for languages written without spaces; an empty reference scores the insertions."""
    ref = normalize_text(reference)
    hyp = normalize_text(hypothesis)
    if language in CHARACTER_SCORED_LANGUAGES:
        ref, hyp = " ".join(ref.replace(" ", "")), " ".join(hyp.replace(" ", ""))
    if not ref:
        return float(len(hyp.split()))
    return float(jiwer.wer(ref, hyp))
