"""BLEU and chrF, the translation scores of section 6.1 (Table 2).

> On the WMT 2014 English-to-German translation task, the big transformer model
> (Transformer (big) in Table 2) outperforms the best previously reported models
> (including ensembles) by more than 2.0 BLEU, establishing a new
> state-of-the-art BLEU score of 28.4.

BLEU (Papineni et al. 2002) is a corpus score: n-gram matches for n = 1..4 are
pooled over all sentences into clipped precisions p_n, and

    BLEU = BP * exp(1/4 * sum_n log p_n),   BP = min(1, exp(1 - r / c))

with c the hypothesis length and r the reference length, in tokens. The number
therefore depends on what a token is. The paper does not say how it tokenized;
Post (2018, "A Call for Clarity in Reporting BLEU Scores") finds differences as
high as 1.8 BLEU between commonly used configurations, so we report two measures
and say which is which:

- `sacrebleu_score`: sacreBLEU, cased, on detokenized text with its own ``13a``
  tokenizer, returned with its signature (``nrefs:1|case:mixed|...``). This is
  the comparable, reproducible number.
- `tokenized_bleu`: what much of the Multi30k literature reports, i.e.
  ``multi-bleu.perl`` on lowercased Moses-tokenized text. Both sides go through
  Moses punctuation normalisation and the Moses tokenizer of the target language
  (``sacremoses``, no XML escaping), are lowercased, and are scored by sacreBLEU
  with ``tokenize='none'`` and ``smooth_method='none'``, which is multi-bleu.perl's
  arithmetic (an n-gram order with no match gives a score of 0).

chrF (Popovic 2015) is the character n-gram F-score; it does not depend on the
tokenizer and is reported with its signature too.

`paired_bootstrap` asks whether one system's BLEU is higher than another's by
more than the choice of test sentences explains (Koehn 2004): sacreBLEU's
paired bootstrap resampling, which scores both systems on the same resampled
test sets.
"""

from __future__ import annotations

import functools
from typing import Any

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest
from sacremoses import MosesPunctNormalizer, MosesTokenizer

from .errors import AiaynError


def _check(hyps: list[str], refs: list[str]) -> None:
    """One reference per hypothesis, at least one pair, all strings."""
    if len(hyps) != len(refs):
        raise AiaynError(
            f"{len(hyps)} hypotheses but {len(refs)} references; "
            "pass one reference per hypothesis, in the same order"
        )
    if not hyps:
        raise AiaynError("no sentences to score; pass at least one pair")
    for name, texts in (("hypothesis", hyps), ("reference", refs)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise AiaynError(f"{name} {i} is {type(t).__name__}, not str")


def sacrebleu_score(
    hyps: list[str], refs: list[str], lowercase: bool = False
) -> dict[str, Any]:
    """sacreBLEU (13a tokenizer) on detokenized text, with its signature.

    Cased by default; ``lowercase`` (for a model trained on lowercased text) says
    ``case:lc`` in the signature.
    """
    _check(hyps, refs)
    bleu = BLEU(lowercase=lowercase)
    s = bleu.corpus_score(hyps, [refs])
    return {
        "score": s.score,
        "signature": str(bleu.get_signature()),
        "precisions": list(s.precisions),  # p_1..p_4 in percent
        "bp": s.bp,
        "sys_len": s.sys_len,
        "ref_len": s.ref_len,
    }


def chrf_score(
    hyps: list[str], refs: list[str], lowercase: bool = False
) -> dict[str, Any]:
    """sacreBLEU's chrF (character 6-grams, beta=2), with its signature."""
    _check(hyps, refs)
    chrf = CHRF(lowercase=lowercase)
    s = chrf.corpus_score(hyps, [refs])
    return {"score": s.score, "signature": str(chrf.get_signature())}


@functools.lru_cache(maxsize=8)
def _moses(lang: str) -> tuple[MosesPunctNormalizer, MosesTokenizer]:
    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)


def moses_tokenize(text: str, lang: str) -> str:
    """Moses-normalised, Moses-tokenized, lowercased `text`, tokens space-joined."""
    normalizer, tokenizer = _moses(lang)
    tokens = tokenizer.tokenize(normalizer.normalize(text), escape=False)
    return " ".join(tokens).lower()


def tokenized_bleu(hyps: list[str], refs: list[str], lang: str) -> float:
    """multi-bleu.perl BLEU on lowercased Moses tokens of language `lang`."""
    _check(hyps, refs)
    hyp_tok = [moses_tokenize(h, lang) for h in hyps]
    ref_tok = [moses_tokenize(r, lang) for r in refs]
    bleu = BLEU(tokenize="none", smooth_method="none", force=True)
    return bleu.corpus_score(hyp_tok, [ref_tok]).score


def evaluate_translations(
    hyps: list[str], refs: list[str], tgt_lang: str, lowercase: bool = False
) -> dict[str, Any]:
    """All scores of one test set, as a JSON-ready dict.

    ``lowercase``: sacreBLEU and chrF ignore case (a model of lowercased text);
    the tokenized BLEU lowercases in any case.
    """
    bleu = sacrebleu_score(hyps, refs, lowercase)
    chrf = chrf_score(hyps, refs, lowercase)
    return {
        "bleu": bleu["score"],
        "bleu_signature": bleu["signature"],
        "tok_bleu": tokenized_bleu(hyps, refs, tgt_lang),
        "chrf": chrf["score"],
        "chrf_signature": chrf["signature"],
        "n": len(hyps),
    }


def paired_bootstrap(
    baseline: list[str],
    system: list[str],
    refs: list[str],
    lowercase: bool = False,
    n_samples: int = 1000,
) -> dict[str, Any]:
    """sacreBLEU's paired bootstrap test of `system` against `baseline`.

    Both are scored with sacreBLEU (as `sacrebleu_score`) on ``n_samples``
    test sets drawn with replacement from the sentences of `refs`, the same
    draws for both (seeded: the same inputs give the same answer). Returns each
    BLEU with the half-width of its 95% interval, the difference
    ``system - baseline``, and the p-value of the null hypothesis that the two
    systems are equally good: below 0.05, the difference is unlikely to be an
    accident of the test set. (sacreBLEU follows MultEval here: a system scored
    against an identical copy of itself gets the smallest p-value, not 1.)
    """
    _check(baseline, refs)
    _check(system, refs)
    if n_samples < 100:
        raise AiaynError(f"n_samples={n_samples}; use at least 100 resamples")
    test = PairedTest(
        [("baseline", baseline), ("system", system)],
        {"BLEU": BLEU(lowercase=lowercase)},
        [refs],
        test_type="bs",
        n_samples=n_samples,
    )
    signatures, results = test()
    base, sys = results["BLEU"]
    return {
        "baseline": base.score,
        "baseline_ci": float(base.ci),
        "system": sys.score,
        "system_ci": float(sys.ci),
        "delta": sys.score - base.score,
        "p_value": float(sys.p_value),
        "n_samples": n_samples,
        "signature": str(signatures["BLEU"]),
    }
