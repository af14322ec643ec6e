"""BLEU and chrF (section 6.1): hand-computed values and the two BLEU measures."""

import json
import math

import pytest

from aiayn.errors import AiaynError
from aiayn.metrics import (
    chrf_score,
    evaluate_translations,
    moses_tokenize,
    paired_bootstrap,
    sacrebleu_score,
    tokenized_bleu,
)

REFS = ["Two young, White males are outside near many bushes.", "A dog runs."]


def test_identical_is_100() -> None:
    assert sacrebleu_score(REFS, REFS)["score"] == pytest.approx(100.0)
    assert tokenized_bleu(REFS, REFS, "en") == pytest.approx(100.0)
    assert chrf_score(REFS, REFS)["score"] == pytest.approx(100.0)


def test_bleu_by_hand() -> None:
    hyps = ["the cat sat on the mat", "a dog runs"]
    refs = ["the cat sat on the red mat", "a dog runs"]
    # Clipped n-gram matches pooled over both sentences (hyp 1 + hyp 2):
    #   1-grams: 6/6 + 3/3 = 9/9   (the x2, cat, sat, on, mat; a, dog, runs)
    #   2-grams: 4/5 + 2/2 = 6/7   ("the mat" is not in ref 1)
    #   3-grams: 3/4 + 1/1 = 4/5   ("on the mat" is not)
    #   4-grams: 2/3 + 0/0 = 2/3   ("sat on the mat" is not)
    # c = 6 + 3 = 9 hypothesis tokens, r = 7 + 3 = 10, BP = exp(1 - 10/9).
    by_hand = 100 * math.exp(1 - 10 / 9) * (1 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25
    s = sacrebleu_score(hyps, refs)
    assert s["score"] == pytest.approx(by_hand, abs=1e-6)  # 73.5797...
    assert s["precisions"] == pytest.approx([100, 600 / 7, 80, 200 / 3])
    assert s["bp"] == pytest.approx(math.exp(-1 / 9))
    assert (s["sys_len"], s["ref_len"]) == (9, 10)
    # No punctuation or case here, so the tokenized measure agrees.
    assert tokenized_bleu(hyps, refs, "en") == pytest.approx(by_hand, abs=1e-6)
    # Corpus BLEU pools counts; it is not the mean of sentence scores.
    mean = (sacrebleu_score(hyps[:1], refs[:1])["score"] + 100) / 2
    assert abs(mean - by_hand) > 1


def test_signatures() -> None:
    bleu = sacrebleu_score(REFS, REFS)["signature"]
    assert "case:mixed" in bleu and "tok:13a" in bleu and "nrefs:1" in bleu
    assert "nc:6" in chrf_score(REFS, REFS)["signature"]


def test_moses_tokenize() -> None:
    assert moses_tokenize("Hello, World!", "en") == "hello , world !"
    assert moses_tokenize("„Hallo“, sagt er.", "de") == '" hallo " , sagt er .'
    assert moses_tokenize("C'est l'été.", "fr") == "c' est l' été ."


def test_case_and_tokenization_matter() -> None:
    refs = ["Hello, World!"]
    # Lowercased, tokenized output: sacreBLEU's 13a tokenizer splits the
    # reference into "Hello , World !", so only "," and "!" match (cased).
    hyps = ["hello , world !"]
    assert sacrebleu_score(hyps, refs)["score"] < 20
    assert tokenized_bleu(hyps, refs, "en") == pytest.approx(100.0)
    # Detokenized, differently cased output: tokenized BLEU lowercases.
    assert tokenized_bleu(["HELLO, world!"], refs, "en") == pytest.approx(100.0)
    assert sacrebleu_score(["HELLO, world!"], refs)["score"] < 20
    # Without Moses tokenization, "World!" and "World !" would share nothing.
    assert sacrebleu_score(["Hello , World !"], refs)["score"] == pytest.approx(100.0)


def test_tokenized_bleu_is_multi_bleu_no_smoothing() -> None:
    # No 4-gram matches: multi-bleu.perl gives 0, sacreBLEU's default smooths.
    hyps, refs = ["the cat sat here"], ["the cat sat there"]
    assert tokenized_bleu(hyps, refs, "en") == pytest.approx(0.0, abs=1e-6)
    assert sacrebleu_score(hyps, refs)["score"] > 0


def test_evaluate_translations_is_json_ready() -> None:
    hyps = ["Two young white males are outside near bushes.", "A dog is running."]
    out = evaluate_translations(hyps, REFS, "en")
    assert set(out) == {
        "bleu",
        "bleu_signature",
        "tok_bleu",
        "chrf",
        "chrf_signature",
        "n",
    }
    assert out["n"] == 2
    assert out["bleu"] == pytest.approx(sacrebleu_score(hyps, REFS)["score"])
    assert out["tok_bleu"] == pytest.approx(tokenized_bleu(hyps, REFS, "en"))
    assert 0 < out["bleu"] < 100 and 0 < out["chrf"] < 100
    assert json.loads(json.dumps(out)) == out


def test_bad_input() -> None:
    with pytest.raises(AiaynError, match="1 hypotheses but 2 references"):
        sacrebleu_score(["a"], ["a", "b"])
    with pytest.raises(AiaynError, match="no sentences"):
        evaluate_translations([], [], "en")
    with pytest.raises(AiaynError, match="reference 1 is int"):
        chrf_score(["a", "b"], ["a", 3])  # type: ignore[list-item]


def test_paired_bootstrap_tells_a_real_difference_from_none() -> None:
    refs = [f"a man number {i} rides a red bike down the street ." for i in range(60)]
    good = list(refs)
    bad = [r.replace("red bike", "blue car").replace("street", "hill") for r in refs]
    out = paired_bootstrap(bad, good, refs)
    assert out["system"] == pytest.approx(100.0)
    # the point scores are sacrebleu_score's, the resampling only adds intervals
    assert out["baseline"] == pytest.approx(sacrebleu_score(bad, refs)["score"])
    assert out["delta"] > 30 and out["p_value"] < 0.01
    assert "bs:1000" in out["signature"]
    # one sentence of sixty better: a difference the test set can explain
    close = paired_bootstrap(bad, [refs[0], *bad[1:]], refs)
    assert 0 < close["delta"] < 5 and close["p_value"] > 0.05
    # seeded: the same inputs give the same intervals
    assert paired_bootstrap(bad, good, refs) == out


def test_paired_bootstrap_bad_input() -> None:
    with pytest.raises(AiaynError, match="hypotheses"):
        paired_bootstrap(["a"], ["a", "b"], ["a", "b"])
    with pytest.raises(AiaynError, match="resamples"):
        paired_bootstrap(["a"], ["a"], ["a"], n_samples=10)
