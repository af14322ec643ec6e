"""Parsing as a task (section 6.3): data, vocabularies, training, F1."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest
import torch

from aiayn import checkpoint as ckpt
from aiayn.config import ModelConfig
from aiayn.decoding import beam_search, greedy_decode
from aiayn.errors import AiaynError
from aiayn.model import Transformer
from aiayn.parsing import (
    Tree,
    delinearize,
    evalb,
    linearize,
    most_frequent_shapes,
    parse_mrg,
    pos_tags,
    right_branching,
    shape_baseline,
    to_string,
    words,
)
from aiayn.presets import get_preset
from aiayn.tasks import TaskData, evaluate, get_task
from aiayn.tasks.parse import (
    PHRASE_LABELS,
    POS_TAGS,
    TARGET_SYMBOLS,
    TreeConstraint,
    draw_tree,
    is_bracket,
    predict,
    score,
    target_sequence,
    target_symbols,
    well_formed,
)
from aiayn.tokenizer import (
    EOS_ID,
    UNK_CLASSES,
    UNK_ID,
    ParseTokenizer,
    load_tokenizer,
    unknown_class,
)
from aiayn.train import train
from aiayn.translate import decode_ids

matplotlib.use("Agg")

MIRROR = os.environ.get("AIAYN_DATA_MIRROR") or str(
    Path(__file__).resolve().parents[2] / "shared" / "data"
)
needs_mirror = pytest.mark.skipif(
    "://" not in MIRROR and not Path(MIRROR, "ptb_sample").is_dir(),
    reason=f"no Penn Treebank sample in the data mirror {MIRROR}",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private download cache, never ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIAYN_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def data(cache: Path) -> TaskData:
    return get_task("parse").prepare(get_preset("ptb_parse_cpu"), MIRROR)


def test_target_vocabulary_is_53_symbols() -> None:
    assert len(PHRASE_LABELS) == len(set(PHRASE_LABELS)) == 26
    assert len(TARGET_SYMBOLS) == len(set(TARGET_SYMBOLS)) == 53
    assert TARGET_SYMBOLS[0] == "XX"
    assert "(NP" in TARGET_SYMBOLS and ")NP" in TARGET_SYMBOLS


@needs_mirror
def test_split_sizes_and_vocabularies(data: TaskData) -> None:
    assert len(data.train) == 3396  # every training sentence fits max_len
    assert len(data.dev) == len(data.dev_src) == len(data.extra["dev_trees"]) == 273
    assert len(data.extra["test_trees"]) == 245
    tok = data.tokenizer
    assert isinstance(tok, ParseTokenizer)
    assert data.cfg.model.vocab_size == tok.vocab_size == 4 + 53
    assert data.cfg.model.src_vocab_size == tok.src_vocab_size > 5000
    assert not data.cfg.model.shared_vocab
    used = {s for _, t in data.train + data.dev for s in t}
    assert UNK_ID not in used and max(used) < tok.vocab_size
    # Words seen once in training are unknown: about 12% of dev words.
    dev_ids = [i for s, _ in data.dev for i in s]
    unknown = sum(tok.source[i].startswith("<unk") for i in dev_ids) / len(dev_ids)
    assert 0.08 < unknown < 0.16


@needs_mirror
def test_targets_decode_back_to_the_gold_trees(data: TaskData) -> None:
    tok = data.tokenizer
    assert isinstance(tok, ParseTokenizer)
    gold = data.extra["dev_trees"]
    back = []
    for (src, tgt), tree, text in zip(data.dev, gold, data.dev_src, strict=True):
        symbols = tok.decode(tgt).split()
        assert symbols == linearize(tree)
        assert well_formed(symbols, len(src))
        assert text.split() == words(tree) and len(src) == len(words(tree))
        rebuilt = delinearize(symbols, words(tree), pos_tags(tree))
        assert to_string(rebuilt) == to_string(tree)
        back.append(delinearize(symbols, words(tree)))  # tags XX: still 100 F1
    result = evalb(gold, back)
    assert result["f1"] == 100.0 and result["exact_match"] == 100.0


def test_parse_tokenizer_words_unknowns_and_files(tmp_path: Path) -> None:
    sentences = [["The", "dog", "barks", "."], ["The", "dog", "sleeps", "."]]
    tok = ParseTokenizer.train(sentences, TARGET_SYMBOLS)
    assert tok.vocab_size == 57 and tok.src_vocab_size == 4 + len(UNK_CLASSES) + 3
    assert tok.tokenize("The dog runs quickly 1987 Zurich zzz <pad> .") == [
        "The", "dog", "<unk-s>", "<unk-ly>", "<unk-num>", "<unk-Cap>", "<unk>",
        "<unk>", ".",
    ]  # fmt: skip
    assert min(tok.encode("<pad> <s> </s>")) == UNK_ID  # text never makes pad/eos
    assert unknown_class("well-known") == "<unk-hyphen>"
    assert unknown_class("Running") == "<unk-Cap-ing>"
    ids = tok.encode_target("(S (NP XX )NP )S (FOO")
    assert ids[-1] == UNK_ID and tok.decode([1, *ids[:-1], 2, 0]) == "(S (NP XX )NP )S"
    with pytest.raises(AiaynError, match="outside the vocabulary"):
        tok.decode([57])
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, ParseTokenizer)
    assert loaded.source == tok.source and loaded.target == tok.target
    (tmp_path / "tokenizer.json").write_text(json.dumps({"type": "parse", "source": 3}))
    with pytest.raises(AiaynError, match="source must be a list"):
        load_tokenizer(tmp_path)
    with pytest.raises(AiaynError, match="duplicates"):
        ParseTokenizer(tok.source + ["dog"], tok.target)
    with pytest.raises(AiaynError, match="lacks"):
        ParseTokenizer(tok.source[:5], tok.target)


def test_well_formed() -> None:
    good = "(S (NP XX )NP (VP XX )VP )S".split()
    assert well_formed(good, 2)
    assert not well_formed(good, 3)  # one XX per word
    assert not well_formed(good[:-1], 2)  # unclosed
    assert not well_formed("(S (NP XX )VP XX )S".split(), 2)  # mismatched label
    assert not well_formed("(S XX )S (S XX )S".split(), 2)  # two trees
    assert not well_formed("XX (S XX )S".split(), 2)  # a word outside the tree
    assert not well_formed([], 0)


def test_well_formed_with_tag_leaves_and_empty_brackets() -> None:
    assert well_formed("(S (NP NNP )NP (VP VBZ )VP )S".split(), 2)
    assert not well_formed("(S (NP )NP (VP XX )VP )S".split(), 1)  # NP has no word
    assert not well_formed("(S ( XX )S".split(), 1)


def test_tagged_targets_and_their_vocabulary() -> None:
    assert len(POS_TAGS) == len(set(POS_TAGS)) == 45
    pos = target_symbols("pos")
    assert len(pos) == len(set(pos)) == 45 + 52 and "XX" not in pos
    assert target_symbols("XX") == TARGET_SYMBOLS
    with pytest.raises(AiaynError, match="parse_leaves"):
        target_symbols("words")
    (tree,) = parse_mrg("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))))")
    tagged = linearize(tree, tags=True)
    assert " ".join(tagged) == "(S (NP NNP )NP (VP VBZ (NP DT NN )NP )VP )S"
    assert delinearize(tagged, words(tree)) == tree  # the tags come back too
    assert pos_tags(delinearize(linearize(tree), words(tree))) == ["XX"] * 4


def test_shape_baseline_is_the_commonest_tree_of_each_length() -> None:
    trees = parse_mrg(
        "(S (NP (NNP A)) (VP (VBZ b)))"
        "(S (NP (NNP C)) (VP (VBZ d)))"
        "(NP (NP (NN e)) (NN f))"
        "(S (NP (DT a) (NN b)) (VP (VBZ c)))"
    )
    shapes = most_frequent_shapes(trees)
    assert sorted(shapes) == [2, 3]
    assert " ".join(shapes[2]) == "(S (NP XX )NP (VP XX )VP )S"  # 2 of 3 trees
    got = shape_baseline(shapes, ["x", "y", "z"])
    assert to_string(got) == "(S (NP (XX x) (XX y)) (VP (XX z)))"
    assert shape_baseline(shapes, ["x"] * 5) == right_branching(["x"] * 5)


def _random_parser(tok: ParseTokenizer, seed: int) -> Transformer:
    torch.manual_seed(seed)
    src_vocab_size = None if tok.shared else tok.src_vocab_size  # one embedding
    cfg = ModelConfig.tiny(
        vocab_size=tok.vocab_size, src_vocab_size=src_vocab_size, max_len=128
    )
    return Transformer(cfg).eval()


@pytest.mark.parametrize("leaves", ["XX", "pos", "word", "ahead"])
def test_constrained_search_writes_only_well_formed_trees(leaves: str) -> None:
    sentences = [
        "The dog barks .".split(),
        "A cat saw the dog in the big old house today".split(),
        ["Yes"],
    ]
    tok = ParseTokenizer.train(
        sentences, target_symbols(leaves), shared=leaves in ("word", "ahead")
    )
    assert tok.ahead == (leaves == "ahead")
    for seed in range(3):  # untrained models: anything but a tree, left alone
        model = _random_parser(tok, seed)
        free = predict(model, tok, sentences, beam_size=3, extra_len=40)
        pairs = zip(free, sentences, strict=True)
        assert not all(well_formed(o, len(s)) for o, s in pairs)
        for beam, extra in ((1, 40), (4, 40), (4, 12)):
            out = predict(
                model, tok, sentences, beam_size=beam, extra_len=extra,
                constrained=True,
            )  # fmt: skip
            for o, s in zip(out, sentences, strict=True):
                assert well_formed(o, len(s)), (seed, beam, extra, o)
                assert len(o) + 1 <= len(s) + 1 + extra  # EOS within the limit
                tree = delinearize(o, s)
                assert linearize(tree, tags=leaves == "pos") == o  # nothing repaired


def test_word_leaves_share_one_vocabulary_and_follow_the_sentence() -> None:
    (tree,) = parse_mrg("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))))")
    seq = target_sequence(tree, "word")
    assert " ".join(seq) == "(S (NP John )NP (VP has (NP a dog )NP )VP )S"
    assert target_sequence(tree, "pos") == linearize(tree, tags=True)
    assert target_sequence(tree) == linearize(tree)
    sentences = [["John", "has", "a", "dog"], ["John", "has", "a", "cat"]]
    tok = ParseTokenizer.train(sentences, target_symbols("word"), shared=True)
    assert tok.shared and not ParseTokenizer.train(sentences, TARGET_SYMBOLS).shared
    assert tok.target[: tok.src_vocab_size] == tok.source
    assert tok.vocab_size == tok.src_vocab_size + 52  # the brackets, no XX
    ids = tok.encode_target(" ".join(seq))
    src = tok.encode("John has a dog")
    assert [i for i in ids if i < tok.src_vocab_size] == src  # the same ids
    assert tok.decode(ids).split()[2] == "John"
    # "dog" is seen once: an unknown word, on both sides the same id (no class)
    assert tok.encode("dog") == tok.encode_target("dog") == [UNK_ID]
    cfg = get_task("parse").configure(
        get_preset("ptb_parse_cpu").with_overrides(["parse_leaves=word"]), tok
    )
    assert cfg.model.src_vocab_size is None and cfg.model.shared_vocab
    # constrained: every leaf written is the next word of the sentence
    words_in = [["John", "has", "a", "dog"], ["a", "John"]]
    model = _random_parser(tok, 0)
    sources = [tok.encode(" ".join(w)) for w in words_in]
    out = decode_ids(model, sources, 3, 0.3, 20, 8000, False, TreeConstraint(tok))
    for o, src in zip(out, sources, strict=True):
        assert [i for i in o if i < tok.src_vocab_size and i > EOS_ID] == src
        assert well_formed(
            [
                "XX" if i < tok.src_vocab_size else tok.target[i]
                for i in o
                if i > EOS_ID
            ],
            len(src),
        )


def test_leaves_one_word_ahead() -> None:
    (tree,) = parse_mrg("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))))")
    seq = target_sequence(tree, "ahead")
    assert " ".join(seq) == "John (S (NP has )NP (VP a (NP dog XX )NP )VP )S"
    assert [s for s in seq if is_bracket(s)] == [
        s for s in linearize(tree) if is_bracket(s)
    ]  # the same brackets in the same order
    assert ["XX" if not is_bracket(x) else x for x in seq[1:]] == linearize(tree)
    sentences = [["John", "has", "a", "dog"], ["John", "has", "a", "cat"]]
    tok = ParseTokenizer.train(sentences, target_symbols("ahead"), shared=True)
    assert tok.ahead and tok.shared
    assert tok.vocab_size == tok.src_vocab_size + 53  # the brackets and XX
    reread = ParseTokenizer(tok.source, tok.target)  # as load_tokenizer builds it
    assert reread.ahead
    assert not ParseTokenizer.train(sentences, target_symbols("word"), True).ahead
    # constrained: the first word, then each leaf the word after, then XX
    model = _random_parser(tok, 1)
    xx = tok.target.index("XX")
    for words_in in (["John", "has", "a", "dog"], ["a"], ["has", "John"]):
        src = tok.encode(" ".join(words_in))
        for beam in (1, 3):
            (out,) = decode_ids(
                model, [src], beam, 0.3, 20, 8000, False, TreeConstraint(tok)
            )
            leaves = [i for i in out if i < tok.src_vocab_size or i == xx]
            assert leaves == [*src, xx]
            symbols = [tok.target[i] for i in out]
            assert not is_bracket(symbols[0])
            tree_part = ["XX" if not is_bracket(x) else x for x in symbols[1:]]
            assert well_formed(tree_part, len(src))
    # predict drops the first word and writes XX leaves, as for word leaves
    (pred,) = predict(model, tok, [["John", "has", "a", "dog"]], 3, 0.3, 20,
                      constrained=True)  # fmt: skip
    assert well_formed(pred, 4) and pred[0].startswith("(")


def test_word_leaves_score_a_leaf_as_any_word() -> None:
    sentences = [["John", "has", "a", "dog"], ["John", "has", "a", "cat"]]
    tok = ParseTokenizer.train(sentences, target_symbols("word"), shared=True)
    src = torch.tensor([tok.encode("John has a dog") + [EOS_ID]])
    constraint = TreeConstraint(tok)
    constraint.begin(src, 2)
    logp = torch.randn(2, tok.vocab_size).log_softmax(dim=-1)
    got = constraint.rescore(logp)
    words_lp = logp[:, constraint.is_leaf].logsumexp(dim=1)
    john = src[0, 0]
    assert torch.allclose(got[:, john], words_lp)  # the next word: any word's
    others = torch.ones(tok.vocab_size, dtype=torch.bool)
    others[john] = False
    assert torch.equal(got[:, others], logp[:, others])  # nothing else moves
    plain = TreeConstraint(ParseTokenizer.train(sentences, TARGET_SYMBOLS))
    plain.begin(src, 2)
    assert plain.rescore(logp) is logp


class _AllowAll(TreeConstraint):
    def allowed(self, t: int, limits: torch.Tensor) -> torch.Tensor:
        return torch.ones(self.n.numel(), len(self.is_leaf), dtype=torch.bool)


def test_a_constraint_that_allows_everything_changes_nothing() -> None:
    sentences = ["The dog barks .".split(), "A cat saw it".split()]
    tok = ParseTokenizer.train(sentences, TARGET_SYMBOLS)
    model = _random_parser(tok, 0)
    src = torch.tensor([tok.encode(" ".join(s)) + [2] for s in sentences])
    for decode in (
        lambda c: beam_search(model, src, 4, 0.3, extra_len=20, constraint=c),
        lambda c: greedy_decode(model, src, extra_len=20, constraint=c),
    ):
        assert decode(_AllowAll(tok)) == decode(None)


def test_score_against_gold_and_right_branching() -> None:
    (tree,) = parse_mrg(
        "((S (NP (DT The) (NN dog)) (VP (VBD saw) (NP (DT a) (NN cat))) (. .)))"
    )
    tree = tree.children[0]
    assert isinstance(tree, Tree)
    perfect = score([tree], [tree])
    assert perfect["f1"] == perfect["f1_40"] == 100.0 and perfect["n"] == 1
    rb = right_branching(words(tree))
    result = score([tree], [rb])
    assert result["f1"] == result["right_branching_f1"] == perfect["right_branching_f1"]
    assert 0.0 < result["f1"] < 100.0


def test_presets_decode_as_the_paper() -> None:
    for name in (
        "ptb_parse",
        "ptb_parse_cpu",
        "ptb_parse_pos_cpu",
        "ptb_parse_word_cpu",
        "ptb_parse_ahead_cpu",
    ):
        cfg = get_preset(name)
        assert cfg.task == "parse" and cfg.eval_bleu == (name == "ptb_parse")
        assert (cfg.beam_size, cfg.alpha, cfg.extra_len) == (21, 0.3, 300)
        # Dev/test sentences have at most 58 words: source + EOS + 300 + BOS fit.
        assert cfg.model.max_len >= 58 + 1 + cfg.extra_len + 1
        assert cfg.model.max_len > 573  # the longest training target, with BOS
    assert get_preset("ptb_parse").model.n_layers == 4  # the paper's N for parsing
    word = get_preset("ptb_parse_word_cpu")
    assert word.parse_leaves == "word" and word.constrained_decoding
    ahead = get_preset("ptb_parse_ahead_cpu")
    assert ahead.parse_leaves == "ahead" and ahead.constrained_decoding
    assert ahead.parse_augment == 0  # the probe with it scored lower on dev


def test_draw_tree_places_every_label_and_word() -> None:
    import matplotlib.pyplot as plt

    (tree,) = parse_mrg("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))))")
    fig, ax = plt.subplots()
    draw_tree(tree, ax)
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert sorted(texts) == sorted(
        ["S", "NP", "NNP", "John", "VP", "VBZ", "has", "NP", "DT", "a", "NN", "dog"]
    )
    # Against a gold tree: the parser's wrong brackets are drawn in red.
    (gold,) = parse_mrg("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))))")
    (pred,) = parse_mrg("(S (NP (NNP John) (VBZ has)) (NP (DT a) (NN dog)))")
    fig, ax = plt.subplots()
    draw_tree(pred, ax, gold=gold)
    red = sorted(t.get_text() for t in ax.texts if t.get_color() == "#c62828")
    plt.close(fig)
    assert red == ["NP"]  # (NP John has) is wrong; (NP a dog) and S are right


@needs_mirror
@pytest.mark.parametrize("leaves", ["XX", "ahead"])
def test_short_training_run_end_to_end(
    cache: Path, tmp_path: Path, leaves: str
) -> None:
    cfg = get_preset("ptb_parse_cpu").with_overrides(
        [
            "model.d_model=32", "model.d_ff=64", "model.n_layers=1",
            "model.dropout=0.0", "max_steps=30", "warmup=10", "max_tokens=1500",
            "train_limit=300", "eval_every=30", "save_every=15", "average_last=2",
            "beam_size=2", "extra_len=10", f"parse_leaves={leaves}",
            f"constrained_decoding={str(leaves == 'ahead').lower()}",
        ]
    )  # fmt: skip
    out = tmp_path / "run"
    metrics = train(cfg, out, mirror=MIRROR, progress=False)
    assert metrics["steps"] == 30
    assert 0.0 <= metrics["f1"] <= 100.0 and metrics["n"] == 273
    assert 0.0 < metrics["right_branching_f1"] < 100.0
    model = ckpt.load_model(out)
    tok = load_tokenizer(out)
    assert isinstance(tok, ParseTokenizer)
    # it learnt something in 30 steps: below the uniform distribution
    assert math.log(tok.vocab_size) > metrics["dev_nll"]
    assert model.cfg.shared_vocab == tok.ahead == (leaves == "ahead")
    if leaves == "ahead":  # constrained: every output a tree, nothing repaired
        assert metrics["well_formed"] == 100.0
    task = get_task("parse")
    data = task.prepare(ckpt.read_config(out), MIRROR, tok)
    torch.manual_seed(0)
    result = evaluate(model, data, beam_size=21, alpha=0.3, limit=3)  # extra_len 10
    assert result["beam_size"] == 21 and result["n"] == 3
    assert 0.0 <= result["f1"] <= 100.0 and 0.0 <= result["well_formed"] <= 100.0
    test = task.evaluate_split(
        model, tok, data.cfg, "test", beam_size=1, alpha=0.3, limit=2, mirror=MIRROR
    )
    assert test.scores["split"] == "test" and test.scores["n"] == 2
    assert len(test.outputs) == 2 and test.outputs[0].startswith("(")
    with pytest.raises(AiaynError, match="choose one of dev, test"):
        task.evaluate_split(model, tok, data.cfg, "train", 1, 0.3, mirror=MIRROR)


def test_a_parsers_card_reports_f1_repairs_and_baselines(tmp_path: Path) -> None:
    from aiayn.ship import model_card

    cfg = get_preset("ptb_parse_word_cpu")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    metrics = {
        "parameters": 1234, "steps": 10, "averaged_checkpoints": ["step_0000010"],
        "device": "CPU", "torch": "x", "wall_time_s": 60.0,
        "train_tokens_per_s": 100.0, "command": "python -m aiayn train", "dev_ppl": 1.5,
        "f1": 12.0, "exact_match": 3.0,
    }  # fmt: skip
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    test = {
        "split": "test", "f1": 61.25, "f1_40": 62.5, "n": 245, "well_formed": 100.0,
        "right_branching_f1": 13.07, "shape_baseline_f1": 11.5, "beam_size": 21,
        "alpha": 0.3, "constrained": True, "command": "python -m aiayn evaluate",
        "device": "CPU", "decode_wall_s": 9.0,
    }  # fmt: skip
    (tmp_path / "eval_test.json").write_text(json.dumps(test))
    free = test | {"f1": 40.5, "well_formed": 80.0, "constrained": False}
    (tmp_path / "eval_test_free.json").write_text(json.dumps(free))
    card = model_card(tmp_path, "p")
    assert (
        "| test (245 sentences) | labelled bracket F1, EVALB COLLINS.prm "
        "(beam 21, alpha 0.3, constrained search) | 61.25 |" in card
    )
    assert "(beam 21, alpha 0.3, the paper's search) | 40.50 |" in card
    assert "outputs that needed no repair (%) | 80.00 |" in card
    assert "right-branching baseline F1 | 13.07 |" in card
    assert "per length, F1 | 11.50 |" in card
    assert "| dev | labelled bracket F1 (EVALB) | 12.00 |" in card  # no eval_dev
    assert "perplexity per target symbol" in card and "leaves: word" in card
    assert "BLEU" not in card and "exact match" not in card and "en→de" not in card
    assert "aiayn.tasks.parse.predict" in card and "translate" not in card
