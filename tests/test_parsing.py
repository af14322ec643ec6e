"""Tests for aiayn.parsing: trees, linearisation (Vinyals et al.) and EVALB."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn.errors import AiaynError
from aiayn.parsing import (
    Tree,
    brackets,
    clean,
    delinearize,
    evalb,
    linearize,
    parse_mrg,
    pos_tags,
    right_branching,
    split_by_file,
    swap_words,
    to_string,
    words,
)
from aiayn.ptb import load_files

MIRROR = os.environ.get("AIAYN_DATA_MIRROR") or str(
    Path(__file__).resolve().parents[2] / "shared" / "data"
)


def one(text: str) -> Tree:
    (tree,) = parse_mrg(text)
    return tree


def cleaned_one(tree: Tree) -> Tree:
    out = clean(tree)
    assert out is not None
    return out


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if "://" not in MIRROR and not Path(MIRROR, "ptb_sample").is_dir():
        pytest.skip(f"no Penn Treebank sample in the data mirror {MIRROR}")
    cache = tmp_path_factory.mktemp("cache")
    return load_files(mirror=MIRROR, cache_dir=cache, progress=False)


@pytest.fixture(scope="session")
def raw(files: dict[str, str]) -> dict[str, list[Tree]]:
    return {fid: parse_mrg(text) for fid, text in files.items()}


@pytest.fixture(scope="session")
def cleaned(raw: dict[str, list[Tree]]) -> dict[str, list[Tree]]:
    return {fid: [cleaned_one(t) for t in ts] for fid, ts in raw.items()}


# --- reading and cleaning ----------------------------------------------------


def test_parse_mrg_real_file(files: dict[str, str]) -> None:
    trees = parse_mrg(files["wsj_0001"])
    assert len(trees) == 2
    assert trees[0].label == "" and cleaned_one(trees[0]).label == "S"
    assert words(trees[0])[:6] == ["Pierre", "Vinken", ",", "61", "years", "old"]
    assert words(trees[1])[-2:] == ["group", "."]
    assert pos_tags(trees[1])[:3] == ["NNP", "NNP", "VBZ"]


def test_sample_has_3914_trees_and_to_string_round_trips(
    raw: dict[str, list[Tree]],
) -> None:
    trees = [t for ts in raw.values() for t in ts]
    assert len(trees) == 3914
    assert all(parse_mrg(to_string(t)) == [t] for t in trees)


def test_parse_mrg_rejects_malformed_text() -> None:
    for bad in ["(S (NP (DT a)", "(S (DT a)))", "word (S (DT a))", "(NP (DT a) b)"]:
        with pytest.raises(AiaynError):
            parse_mrg(bad)


def test_clean_removes_empty_elements_and_function_tags() -> None:
    raw = one(
        "( (S (NP-SBJ-1 (NNP Mr.) (NNP Smith))"
        " (VP (VBD was) (VP (VBN hired) (NP (-NONE- *-1))"
        " (SBAR (-NONE- 0) (S (-NONE- *T*-2)))"
        " (PP-TMP=2 (IN in) (NP (NNP May)))"
        " (PRN (-LRB- -LRB-) (ADVP|PRT (RB again)) (-RRB- -RRB-))))"
        " (. .)) )"
    )
    expected = (
        "(S (NP (NNP Mr.) (NNP Smith))"
        " (VP (VBD was) (VP (VBN hired)"
        " (PP (IN in) (NP (NNP May)))"
        " (PRN (-LRB- -LRB-) (ADVP (RB again)) (-RRB- -RRB-))))"
        " (. .))"
    )
    assert to_string(cleaned_one(raw)) == expected
    assert clean(one("( (S (NP (-NONE- *)) (VP (-NONE- *T*))) )")) is None


def test_clean_keeps_unary_chains() -> None:
    tree = cleaned_one(one("( (S (NP-SBJ (NP (NNS dogs))) (VP (VBP bark))) )"))
    assert to_string(tree) == "(S (NP (NP (NNS dogs))) (VP (VBP bark)))"


def test_evalb_on_raw_trees_matches_our_cleaning(raw: dict[str, list[Tree]]) -> None:
    # EVALB deletes -NONE- and cuts function tags itself; our clean() must agree,
    # except that clean() also resolves the one ambiguous label ADVP|PRT.
    trees = [t for ts in raw.values() for t in ts]
    differ = [t for t in trees if brackets(t) != brackets(cleaned_one(t))]
    assert len(differ) == 1 and "(ADVP|PRT" in to_string(differ[0])


# --- split ---------------------------------------------------------------------


def test_split_by_file(cleaned: dict[str, list[Tree]]) -> None:
    split = split_by_file(list(cleaned))
    sizes = {k: (len(v), sum(len(cleaned[f]) for f in v)) for k, v in split.items()}
    assert sizes == {"train": (159, 3396), "dev": (20, 273), "test": (20, 245)}
    assert split["dev"][0] == "wsj_0160" and split["test"][-1] == "wsj_0199"
    with pytest.raises(AiaynError):
        split_by_file(["wsj_01"])


# --- linearisation -------------------------------------------------------------


def test_linearize_vinyals_example() -> None:
    tree = one("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))) (. .))")
    assert " ".join(linearize(tree)) == ("(S (NP XX )NP (VP XX (NP XX XX )NP )VP XX )S")


def test_round_trip_on_every_sample_tree(cleaned: dict[str, list[Tree]]) -> None:
    for tree in (t for ts in cleaned.values() for t in ts):
        ws, tags = words(tree), pos_tags(tree)
        assert delinearize(linearize(tree), ws, tags) == tree
        assert pos_tags(delinearize(linearize(tree), ws)) == ["XX"] * len(ws)


@pytest.mark.parametrize(
    ("tokens", "n_words", "expected"),
    [
        ("(S XX )S", 1, "(S (XX a))"),
        (")NP (S XX )S )S", 1, "(S (XX a))"),  # unmatched closers dropped
        ("(S (NP XX XX", 2, "(S (NP (XX a) (XX b)))"),  # unclosed openers closed
        ("(S (NP XX )VP XX )S", 2, "(S (NP (XX a)) (XX b))"),  # closer label ignored
        ("(S (NP XX )NP )S", 3, "(S (NP (XX a)) (XX b) (XX c))"),  # too few XX
        ("(S (NP XX", 2, "(S (NP (XX a) (XX b)))"),  # ... under the open one
        ("(S XX XX XX )S", 1, "(S (XX a))"),  # too many XX: extras dropped
        ("(S (NP )NP XX (VP )VP )S", 1, "(S (XX a))"),  # empty constituents go
        ("(NP XX )NP (VP XX )VP", 2, "(S (NP (XX a)) (VP (XX b)))"),  # wrapped in S
        ("XX XX", 2, "(S (XX a) (XX b))"),
        ("", 1, "(S (XX a))"),
    ],
)
def test_delinearize_repairs(tokens: str, n_words: int, expected: str) -> None:
    ws = ["a", "b", "c"][:n_words]
    assert to_string(delinearize(tokens.split(), ws)) == expected


def test_delinearize_puts_pos_back_and_checks_inputs() -> None:
    tree = delinearize(
        "(S (NP XX )NP (VP XX )VP )S".split(), ["He", "ran"], ["PRP", "VBD"]
    )
    assert to_string(tree) == "(S (NP (PRP He)) (VP (VBD ran)))"
    with pytest.raises(AiaynError):
        delinearize(["XX"], [])
    with pytest.raises(AiaynError):
        delinearize(["XX"], ["a"], ["DT", "NN"])


TOKENS = st.sampled_from(
    ["(S", "(NP", "(VP", "(PP", ")S", ")NP", ")VP", ")", "(", "XX", "XX", "<unk>"]
)
WORDS = st.text(alphabet="abcxyz.,", min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=80), st.lists(WORDS, min_size=1, max_size=12))
def test_delinearize_always_gives_a_tree_over_the_words(
    tokens: list[str], ws: list[str]
) -> None:
    tree = delinearize(tokens, ws)
    assert words(tree) == ws
    assert not tree.is_preterminal and tree.label
    nodes = [tree]
    while nodes:  # no empty constituents, words only under POS tags
        node = nodes.pop()
        assert node.children
        if not node.is_preterminal:
            assert all(isinstance(c, Tree) for c in node.children)
            nodes.extend(c for c in node.children if isinstance(c, Tree))
    # A repaired tree is a fixed point (its leaf tokens are its tags).
    assert delinearize(linearize(tree, tags=True), ws) == tree
    assert parse_mrg(to_string(tree)) == [tree]


# --- EVALB -----------------------------------------------------------------------

# 1. Plain spans. gold: S(0,5) NP(0,2) VP(2,5) NP(3,5)
#                 pred: S(0,5) NP(0,3) VP(3,5) NP(3,5)  -> matched S, NP(3,5)
#    P = 2/4 = 50, R = 2/4 = 50, F = 50.
G1 = "(S (NP (DT the) (NN dog)) (VP (VBD saw) (NP (DT a) (NN cat))))"
P1 = "(S (NP (DT the) (NN dog) (VBD saw)) (VP (NP (DT a) (NN cat))))"
# 2. Punctuation. "." is deleted before positions are counted, so
#    gold: S(0,2) NP(0,1) VP(1,2); pred: S(0,2) NP(0,1) VP(1,2), and FRAG covers
#    only "." so it has no words left and is dropped -> P = R = F = 100.
G2 = "(S (NP (PRP He)) (VP (VBD left)) (. .))"
P2 = "(S (NP (PRP He)) (VP (VBD left) (FRAG (. .))))"
# 3. ADVP = PRT. gold: S(0,3) NP(0,1) VP(1,3) PRT=ADVP(2,3).
#    pred ADVP(2,3) matches PRT: 100. pred PP(2,3) does not: P = R = F = 3/4 = 75.
G3 = "(S (NP (PRP He)) (VP (VBD gave) (PRT (RP up))))"
P3 = "(S (NP (PRP He)) (VP (VBD gave) (ADVP (RP up))))"
P3_PP = "(S (NP (PRP He)) (VP (VBD gave) (PP (RP up))))"
# 4. Multiset. gold: S(0,2) NP(0,1) NP(0,1) VP(1,2); pred: S(0,2) NP(0,1) VP(1,2)
#    matched 3: P = 3/3 = 100, R = 3/4 = 75, F = 2*100*75/175 = 85.714...
G4 = "(S (NP (NP (NNS dogs))) (VP (VBP bark)))"
P4 = "(S (NP (NNS dogs)) (VP (VBP bark)))"


def score(gold: list[str], pred: list[str], **kw: int) -> dict[str, float]:
    return evalb([one(g) for g in gold], [one(p) for p in pred], **kw)


def test_evalb_hand_examples() -> None:
    r = score([G1], [P1])
    assert (r["precision"], r["recall"], r["f1"]) == (50.0, 50.0, 50.0)
    assert score([G2], [P2])["f1"] == 100.0
    assert brackets(one(P2)) == {("S", 0, 2): 1, ("NP", 0, 1): 1, ("VP", 1, 2): 1}
    assert brackets(one(P2), collins=False) == {
        ("S", 0, 3): 1,
        ("NP", 0, 1): 1,
        ("VP", 1, 3): 1,
        ("FRAG", 2, 3): 1,
    }
    assert score([G3], [P3])["f1"] == 100.0
    assert score([G3], [P3_PP])["f1"] == pytest.approx(75.0)
    r = score([G4], [P4])
    assert (r["precision"], r["recall"]) == (100.0, 75.0)
    assert r["f1"] == pytest.approx(600 / 7)


def test_evalb_pools_brackets_over_the_corpus() -> None:
    # 1 + 4: matched 2 + 3 = 5, gold 4 + 4 = 8, pred 4 + 3 = 7.
    # P = 5/7 = 71.43, R = 5/8 = 62.5, F = 2PR/(P+R) = 2/3 = 66.67 (the mean of
    # the sentence F1s, (50 + 85.71)/2 = 67.86, would be wrong).
    r = score([G1, G4], [P1, P4])
    assert r["precision"] == pytest.approx(500 / 7)
    assert r["recall"] == pytest.approx(62.5)
    assert r["f1"] == pytest.approx(200 / 3)
    assert r["exact_match"] == 0.0 and r["n"] == 2
    assert score([G1, G2], [P1, P2])["exact_match"] == 50.0


def test_evalb_length_cutoff_counts_punctuation() -> None:
    # G2 has 3 words with "."; G1 has 5.
    assert score([G1, G2], [P1, P2], max_len=3)["n"] == 1
    assert score([G1, G2], [P1, P2], max_len=3)["f1"] == 100.0
    assert score([G1, G2], [P1, P2], max_len=2)["n"] == 0


def test_evalb_needs_the_same_words() -> None:
    with pytest.raises(AiaynError):
        score([G1], [G2])
    with pytest.raises(AiaynError):
        score([G1, G2], [P1])


def test_gold_against_gold_is_100(cleaned: dict[str, list[Tree]]) -> None:
    trees = [t for ts in cleaned.values() for t in ts]
    r = evalb(trees, trees)
    assert r["f1"] == r["exact_match"] == 100.0 and r["n"] == 3914


# --- baseline --------------------------------------------------------------------


def test_right_branching_shape() -> None:
    tree = right_branching(["a", "b", "c", "d"], ["DT", "NN", "VBZ", "RB"])
    assert to_string(tree) == "(S (DT a) (VP (NN b) (NP (VBZ c) (RB d))))"
    assert to_string(right_branching(["a"])) == "(S (XX a))"


@pytest.mark.parametrize("part", ["dev", "test"])
def test_right_branching_baseline(cleaned: dict[str, list[Tree]], part: str) -> None:
    gold = [t for f in split_by_file(list(cleaned))[part] for t in cleaned[f]]
    pred = [right_branching(words(t), pos_tags(t)) for t in gold]
    r = evalb(gold, pred)
    print(f"right-branching {part}: F1 {r['f1']:.2f} over {r['n']} sentences")
    assert 5.0 < r["f1"] < 40.0


# --- data augmentation (not in the paper) -------------------------------------


def test_swap_words_keeps_brackets_and_swaps_only_open_class_words() -> None:
    trees = [
        one("((S (NP (DT The) (NN cat)) (VP (VBD sat)"
            " (PP (IN on) (NP (DT the) (NN mat)))) (. .)))"),
        one("((S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (JJ big) (NN dog))) (. .)))"),
    ]  # fmt: skip
    before = [to_string(t) for t in trees]
    copies = swap_words(trees, copies=50, p=1.0, seed=3)
    assert [to_string(t) for t in trees] == before  # inputs untouched
    assert len(copies) == 100
    nouns = {"cat", "mat", "dog"}
    seen_nn: set[str] = set()
    for i, tree in enumerate(copies):
        original = trees[i % 2]
        assert linearize(tree) == linearize(original)  # same brackets and leaves
        assert pos_tags(tree) == pos_tags(original)
        for tag, old, new in zip(
            pos_tags(tree), words(original), words(tree), strict=True
        ):
            if tag in ("DT", "IN", "."):
                assert new == old  # closed class: never swapped
            elif tag == "NN":
                assert new in nouns  # from the same tag's pool
                seen_nn.add(new)
            elif tag in ("VBD", "VBZ", "NNP", "JJ"):
                assert new == old  # a pool of one word
    assert seen_nn == nouns  # p=1 draws across the whole pool
    assert [to_string(t) for t in swap_words(trees, 50, 1.0, seed=3)] == [
        to_string(t) for t in copies
    ]  # deterministic for a seed
    assert swap_words(trees, 0, 0.5) == []


def test_swap_words_rate_follows_p() -> None:
    tree = one("((NP " + " ".join(f"(NN w{i})" for i in range(200)) + "))")
    (copy,) = swap_words([tree], copies=1, p=0.25, seed=0)
    changed = sum(a != b for a, b in zip(words(tree), words(copy), strict=True))
    # a swap may draw the same word back (1 in 200): about 0.25 * 199/200 of 200
    assert 30 <= changed <= 70
