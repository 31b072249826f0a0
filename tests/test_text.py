"""Raw text in, right names out: the tokenizer follows CoNLL-2003, offsets lead back to the text.

`bptt.io.text` cuts raw text as the training data is cut (every expected token list below is written
out), gives each token its place in the text, splits sentences, and undoes the cutting
(``detokenize``). `Tagger.tag` / `tag_many` and ``bptt tag`` tag raw text by one code path and point
every entity at the characters it came from.
"""

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.cli import main
from bptt.cli.tag import inline_text
from bptt.errors import BpttError
from bptt.io.conll import read_conll, spans
from bptt.io.text import (
    ABBREVIATIONS,
    detokenize,
    pretokenized,
    segment,
    split_sentences,
    tokenize,
    vocabulary_abbreviations,
)
from bptt.models.tagger import Entity, Tagger, load_tagger
from bptt.models.vocab import normalize
from tests.conftest import data_file
from tests.helpers import TINY, write_slice

TYPOGRAPHIC = set("‘’‛“”„‟«»–—―…")  # characters whose token is written as the model reads it

# ------------------------------------------------------------------------------------- the tokenizer

CASES = [
    (
        "Mr. Smith of Acme Corp. visited the U.S. Senate in Washington, D.C. on Jan. 5.",
        ["Mr.", "Smith", "of", "Acme", "Corp.", "visited", "the", "U.S.", "Senate", "in", "Washington", ",",
         "D.C.", "on", "Jan.", "5", "."],
    ),
    (
        "Dr. Jane Goodall won't speak at St. Mary's College in New York City.",
        ["Dr.", "Jane", "Goodall", "wo", "n't", "speak", "at", "St.", "Mary", "'s", "College", "in", "New",
         "York", "City", "."],
    ),
    ("J. K. Rowling can't say it's true.",
     ["J.", "K.", "Rowling", "ca", "n't", "say", "it", "'s", "true", "."]),
    (
        "They're sure we'll go; I've heard I'm told he'd come, don't you?",
        ["They", "'re", "sure", "we", "'ll", "go", ";", "I", "'ve", "heard", "I", "'m", "told", "he", "'d",
         "come", ",", "do", "n't", "you", "?"],
    ),
    ("AUSTRALIA'S RUN DOESN'T STOP", ["AUSTRALIA", "'S", "RUN", "DOES", "N'T", "STOP"]),
    ("O'Neill's o'clock d'affaires Gov't", ["O'Neill", "'s", "o'clock", "d'affaires", "Gov't"]),
    (
        "Prices rose 5% to $5, US$1,000.50 or C$3.5 million.",
        ["Prices", "rose", "5", "%", "to", "$", "5", ",", "US$", "1,000.50", "or", "C$", "3.5", "million",
         "."],
    ),
    (
        "On 1996-08-28 it was 6-4, 1/2 point, +0.05 at 12:30 and .496 for one-day S&P.",
        ["On", "1996-08-28", "it", "was", "6-4", ",", "1/2", "point", ",", "+0.05", "at", "12:30", "and",
         ".496", "for", "one-day", "S&P", "."],
    ),
    (
        "See http://www.reuters.com/news?id=5. Or write to jeffrey.hodgson@reuters.com.",
        ["See", "http://www.reuters.com/news?id=5", ".", "Or", "write", "to", "jeffrey.hodgson@reuters.com",
         "."],
    ),
    (
        '(See www.example.org/a-b, "the U.S.-led talks" [again] -- e.g. at 9 a.m. ...)',
        ["(", "See", "www.example.org/a-b", ",", '"', "the", "U.S.-led", "talks", '"', "[", "again", "]",
         "--", "e.g.", "at", "9", "a.m.", "...", ")"],
    ),
    (
        "Farmers' Union figures for '96 and the Peres' office",
        ["Farmers", "'", "Union", "figures", "for", "'", "96", "and", "the", "Peres", "'", "office"],
    ),
    ("“I’m here,” she said — ‘really’…",
     ['"', "I", "'m", "here", ",", '"', "she", "said", "--", "'", "really", "'", "..."]),
    ("1. Michael Schumacher (Germany) 1:35.123",
     ["1.", "Michael", "Schumacher", "(", "Germany", ")", "1:35.123"]),
    ("He lives in the U.S.", ["He", "lives", "in", "the", "U.S", "."]),  # a final period: "U.S ." as CoNLL
    ("Wait!! Really?! Yes.", ["Wait", "!!", "Really", "?", "!", "Yes", "."]),
]  # fmt: skip


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0][:30] for c in CASES])
def test_tokens_as_conll_writes_them(text, expected):
    tokens = tokenize(text)
    assert [t.text for t in tokens] == expected
    for t in tokens:  # each token is where it says, its characters the text's own
        original = text[t.start : t.end]
        assert t.text == original or TYPOGRAPHIC & set(original), (t, original)


def test_offsets_of_ptb_splits_are_the_original_characters():
    text = "They won't, can't and don’t."
    tokens = tokenize(text)
    assert [(t.text, text[t.start : t.end]) for t in tokens] == [
        ("They", "They"), ("wo", "wo"), ("n't", "n't"), (",", ","), ("ca", "ca"), ("n't", "n't"),
        ("and", "and"), ("do", "do"), ("n't", "n’t"), (".", "."),
    ]  # fmt: skip
    i = text.index("won't")
    assert [(t.start, t.end) for t in tokens[1:3]] == [(i, i + 2), (i + 2, i + 5)]


def test_a_line_break_ends_a_sentence_and_offsets_count_it():
    text = "first line\nSecond. Third\n\n  fourth"
    sentences = split_sentences(text)
    assert [[t.text for t in s] for s in sentences] == [
        ["first", "line"], ["Second", "."], ["Third"], ["fourth"]
    ]  # fmt: skip
    assert all(text[t.start : t.end] == t.text for s in sentences for t in s)
    assert segment("").tokens == [] and segment(" \n\t").sentences == []


# --------------------------------------------------------------------------------------- sentences

SENTENCES = [
    (
        "Mr. Smith went to Washington. He arrived on Jan. 5. Then he left!",
        [["Mr.", "Smith", "went", "to", "Washington", "."], ["He", "arrived", "on", "Jan.", "5", "."],
         ["Then", "he", "left", "!"]],
    ),
    # an abbreviation ends a sentence before a common sentence start (its period split off, as CoNLL)
    ("She lives in the U.S. The talks ended.", [["She", "lives", "in", "the", "U.S", "."],
                                                ["The", "talks", "ended", "."]]),
    # ... and not before a name: the price of never breaking "Mr. Smith" (documented)
    ("She lives in the U.S. Officials agree.",
     [["She", "lives", "in", "the", "U.S.", "Officials", "agree", "."]]),
    ("He met Prof. Higgins in St. Louis. The end.",
     [["He", "met", "Prof.", "Higgins", "in", "St.", "Louis", "."], ["The", "end", "."]]),
    ("Ask Dr. The rest waits.", [["Ask", "Dr.", "The", "rest", "waits", "."]]),  # a title: a name follows
    (
        '"Stop." He left. (It rained.) "Why?" she asked.',
        [['"', "Stop", ".", '"'], ["He", "left", "."], ["(", "It", "rained", ".", ")"],
         ['"', "Why", "?", '"', "she", "asked", "."]],
    ),
    ("It cost 5. 3 people paid. no capital here.",
     [["It", "cost", "5", "."], ["3", "people", "paid", ".", "no", "capital", "here", "."]]),
    ('He left. "', [["He", "left", ".", '"']]),  # a quote left open at the end stays with its sentence
    ("A score of 6-4. 1. Then", [["A", "score", "of", "6-4", "."], ["1", "."], ["Then"]]),
]  # fmt: skip


@pytest.mark.parametrize("text, expected", SENTENCES, ids=[c[0][:30] for c in SENTENCES])
def test_sentences(text, expected):
    got = split_sentences(text)
    assert [[t.text for t in s] for s in got] == expected
    assert [t for s in got for t in s] == tokenize(text)


# ---------------------------------------------------------------------------- offsets, for any text

PIECES = st.sampled_from(
    ["Mr.", "U.S.", "won't", "Smith's", "Farmers'", " ", "  ", "\n", "\r\n", "\t", ".", ",", '"', "'", "’",
     "“", "(", ")", "5%", "$5", "US$", "http://a.b/c.", "e.g.", "J.", "...", "…", "--", "—", "1.", "+0.5",
     "a-b", "x@y.z", "St", "The", "é", "e\u0301", "\u00a0", "\u2028", "!!", "?"]
)  # fmt: skip


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60), st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=25).map("".join)
    )
)
def test_offsets_are_increasing_in_bounds_and_cover_the_text(text):
    seg = segment(text)
    end = 0
    for t in seg.tokens:
        assert end <= t.start < t.end <= len(text), (t, end)  # increasing, non-overlapping, not empty
        piece = text[t.start : t.end]
        assert not any(c.isspace() for c in piece)
        assert t.text == piece or TYPOGRAPHIC & set(piece)
        end = t.end
    # every character that is not whitespace is in exactly one token
    assert "".join(text[t.start : t.end] for t in seg.tokens) == "".join(text.split())
    # the sentences cut the tokens into consecutive, non-empty runs
    bounds = [b for s in seg.sentences for b in s]
    assert bounds == sorted(bounds) and all(a < b for a, b in seg.sentences)
    assert (bounds[:1], bounds[-1:]) == (([0], [len(seg.tokens)]) if seg.tokens else ([], []))
    assert all(bounds[i] == bounds[i + 1] for i in range(1, len(bounds) - 1, 2))
    assert tokenize(text) == seg.tokens


# ----------------------------------------------------------------------- a model's own abbreviations


def test_the_abbreviations_of_a_vocabulary():
    words = ["<pad>", "<unk>", "u.s.", "corp.", "vs.", "zork.", "a.", "iraq-u.n.", "...", "0.", "00.000).",
             "f...", "x", "inc", ".", "mr"]  # fmt: skip
    assert vocabulary_abbreviations(words) == {"u.s", "corp", "vs", "zork", "a", "iraq-u.n"}
    text = "Zork. bought Blorp. for $5."
    assert [t.text for t in tokenize(text)] == ["Zork", ".", "bought", "Blorp", ".", "for", "$", "5", "."]
    mine = ABBREVIATIONS | vocabulary_abbreviations(["zork.", "blorp."])
    assert [t.text for t in tokenize(text, mine)] == ["Zork.", "bought", "Blorp.", "for", "$", "5", "."]


def random_tagger(train_words=("John", "Smith", "lives", "in", "Paris", ".", "Zork.", "Corp.")):
    """A tagger with random weights (no training) whose vocabulary holds ``train_words``."""
    from bptt.models.tagger_network import TaggerConfig, init_tagger_params
    from bptt.models.vocab import Vocab

    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    cfg = TaggerConfig(task="ner", tags=tags, word_dim=6, case_dim=2, char_dim=3, char_hidden=3, hidden=5)
    vocab = Vocab.build([list(train_words)])
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=1)
    return Tagger(params, cfg, vocab, scheme="IOB1")


def test_a_model_brings_the_abbreviations_of_its_training_data():
    tagger = random_tagger()
    assert "zork" in tagger.abbreviations and ABBREVIATIONS <= tagger.abbreviations
    words = [t.text for t in tagger.segment("Zork. said Zork. Corp. and Blorp. agreed.").tokens]
    assert words == ["Zork.", "said", "Zork.", "Corp.", "and", "Blorp", ".", "agreed", "."]


# ------------------------------------------------------------------------------------ detokenize


@pytest.mark.parametrize(
    "words, text",
    [
        (["U.S.", "Senate", "'s", "view", "."], "U.S. Senate's view."),
        (["I", "do", "n't", "know", ",", "he", "said", ";", "I", "wo", "n't", "."],
         "I don't know, he said; I won't."),
        (['"', "We", "won", ",", '"', "he", "said", ":", '"', "Go", "!", '"'], '"We won," he said: "Go!"'),
        (["(", "Reuters", ")", "$", "5", "rose", "3", "%", "to", "C$", "2", "..."],
         "(Reuters) $5 rose 3% to C$2..."),
        (["Farmers", "'", "Union", "in", "'", "96", "and", "'", "Fargo", "'"],
         "Farmers' Union in '96 and 'Fargo'"),
        (["SOCCER", "-", "JAPAN", "GET", "LUCKY", "WIN", "."], "SOCCER - JAPAN GET LUCKY WIN."),
    ],
)  # fmt: skip
def test_detokenize_undoes_penn_treebank_spacing(words, text):
    assert detokenize(words) == text
    got, offsets = detokenize(words, offsets=True)
    assert got == text and [text[s:e] for s, e in offsets] == words
    assert [t.text for t in tokenize(text)] == words


def test_detokenized_conll_sentences_tokenize_back_to_their_tokens():
    """Measured on eng.testa (3,250 sentences): 99.45% come back identical, with the built-in
    abbreviations and with eng.train's; what differs is CoNLL's own oddities ("1=80", "6-" "oOo-----")."""
    train = read_conll(data_file("conll2003", "eng.train"))
    dev = read_conll(data_file("conll2003", "eng.testa"))
    abbreviations = ABBREVIATIONS | vocabulary_abbreviations({normalize(w) for s in train for w in s.words})
    same = sum([t.text for t in tokenize(detokenize(s.words), abbreviations)] == s.words for s in dev)
    assert same / len(dev) > 0.99, same / len(dev)


# ---------------------------------------------------------------------- tagging raw text, no training


def test_tag_points_every_entity_at_its_characters():
    tagger = random_tagger()
    texts = [
        "Mr. John Smith's Zork. Corp. lives in Paris. Then John left!\nParis , John . ",
        "",
        "  \n",
        "John",
    ]
    found = 0
    for text in texts:
        seg = tagger.segment(text)
        starts, ends = {t.start for t in seg.tokens}, {t.end for t in seg.tokens}
        pos = 0
        for e in tagger.tag(text):
            assert isinstance(e, Entity) and e.type in ("PER", "LOC")
            assert e.text == text[e.char_start : e.char_end] and pos <= e.char_start < e.char_end
            assert e.char_start in starts and e.char_end in ends  # whole tokens
            pos = e.char_end
            found += 1
    assert found  # random weights still find something here, so the test tests


def test_each_sentence_is_tagged_alone():
    tagger = random_tagger()
    text = "John Smith lives in Paris. Then Smith left Paris! John . Paris lives in Smith ."
    seg = tagger.segment(text)
    assert len(seg.sentences) == 4
    want = []
    for a, b in seg.sentences:  # predict each sentence by itself, place its entities in the text
        tags = tagger.predict([[t.text for t in seg.tokens[a:b]]])[0]
        toks = seg.tokens[a:b]
        want += [Entity(typ, text[toks[s].start : toks[e - 1].end], toks[s].start, toks[e - 1].end)
                 for typ, s, e in spans(tags)]  # fmt: skip
    assert tagger.tag(text) == want and want


def test_tag_many_is_tag_on_each_text_and_streams():
    tagger = random_tagger()
    texts = [
        "John Smith lives in Paris.",
        "",
        "Paris. John! Smith?",
        "Zork. Corp. in Paris",
        "\n\n",
        "John",
    ] * 3
    assert list(tagger.tag_many(texts, chunk=2)) == [tagger.tag(t) for t in texts]
    assert list(tagger.tag_many(iter(texts))) == [tagger.tag(t) for t in texts]

    def endless():
        yield from itertools.cycle(texts)

    assert len(list(itertools.islice(tagger.tag_many(endless(), chunk=3), 50))) == 50  # lazy, in blocks


def test_a_text_is_answered_once_its_own_sentences_are_in(monkeypatch):
    """With input that trickles in (``ready`` says nothing more has arrived), every text is one
    block of its own sentences: tagged at once, never waiting for the next text."""
    tagger = random_tagger()
    real, sizes = Tagger.predict, []

    def predict(self, sentences, **kw):
        sizes.append(len(sentences))
        return real(self, sentences, **kw)

    monkeypatch.setattr(Tagger, "predict", predict)
    texts = ["John left. Paris! Smith.", "", "John", "Paris. Smith"]
    segs = [tagger.segment(t) for t in texts]
    got = list(tagger.tag_segmented(iter(segs), ready=lambda: False))
    assert sizes == [3, 1, 2] and [t.segmented for t in got] == segs
    assert [t.entities for t in got] == [tagger.tag(t) for t in texts]


def test_wrong_arguments_are_one_line_errors():
    tagger = random_tagger()
    for call, message in (
        (lambda: tagger.tag(5), "text: expected a string, got int"),
        (lambda: tagger.tag_many("John"), "texts: expected an iterable of strings, got one string (use tag)"),
        (lambda: list(tagger.tag_many(["John", b"Paris"])), "texts[1]: expected a string, got bytes"),
        (lambda: tagger.tag("a " * 10_001), "text: 10001 words; at most 10000 in one sentence"),
    ):
        with pytest.raises(BpttError) as e:
            call()
        assert str(e.value) == message


def test_pretokenized_offsets_are_into_the_words_joined_by_spaces():
    seg = pretokenized(["U.S", ".", "Senate"])
    assert seg.text == "U.S . Senate" and [(t.start, t.end) for t in seg.tokens] == [(0, 3), (4, 5), (6, 12)]
    assert seg.sentences == [(0, 3)] and pretokenized([]).sentences == []


# ------------------------------------------------------------------ end to end: bptt tag on raw text


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny NER model trained on 300 sentences of CoNLL-2003 (2 epochs), and raw lines to tag.

    Small batches and a larger step make it find entities in sentences it has seen (with the
    defaults, 2 epochs of 300 sentences find none), so that the comparisons below compare something.
    """
    d = tmp_path_factory.mktemp("rawtext")
    train = write_slice(data_file("conll2003", "eng.train"), d / "train.txt", 300)
    args = ["--train", d / "train.txt", "--task", "ner", "--epochs", 2, "--seed", 3, "--out", d / "m"]
    args += ["--batch-size", 8, "--lr", 0.01]
    assert main(["train", *map(str, args), *TINY]) == 0
    lines = [detokenize(s.words) for s in train[:40]]  # sentences it has seen: it finds entities
    lines[5] = lines[5] + "  " + lines[6] + " " + lines[7]  # a paragraph: several sentences a line
    lines[8] = ""
    lines[9] = "Mr. Smith of Acme Corp. visited the U.S. Senate in Washington, D.C. on Jan. 5.\r"
    (d / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d / "m", d / "in.txt", [line.rstrip("\r") for line in lines]


def cli_out(capsys, *argv):
    assert main(["tag", *map(str, argv)]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_json_entities_are_the_lines_own_characters_and_tag_agrees(model, capsys):
    m, path, lines = model
    rows = [
        json.loads(r) for r in cli_out(capsys, "--model", m, "--input", path, "--format", "json").splitlines()
    ]
    assert [r["line"] for r in rows] == list(range(1, len(lines) + 1))
    tagger = load_tagger(m)
    assert "u.s" in tagger.abbreviations  # eng.train's slice writes U.S.
    n_entities = 0
    for r, line in zip(rows, lines):
        assert len(r["words"]) == len(r["tags"]) == len(r["offsets"])
        assert [line[s:e] for s, e in r["offsets"]] == r["words"]
        assert r["sentences"] == [list(s) for s in tagger.segment(line).sentences]
        for e in r["entities"]:
            assert e["text"] == line[e["char_start"] : e["char_end"]]
            assert (e["char_start"], e["char_end"]) == (
                r["offsets"][e["start"]][0],
                r["offsets"][e["end"] - 1][1],
            )
        # the Python API gives the same entities as the command line
        assert tagger.tag(line) == [
            Entity(e["type"], e["text"], e["char_start"], e["char_end"]) for e in r["entities"]
        ]
        n_entities += len(r["entities"])
    assert n_entities > 20 and len(rows[5]["sentences"]) == 3
    assert list(tagger.tag_many(lines)) == [tagger.tag(line) for line in lines]
    words = rows[9]["words"]
    assert words[:5] == ["Mr.", "Smith", "of", "Acme", "Corp."] and "U.S." in words and "D.C." in words


@pytest.mark.slow
def test_inline_keeps_the_text_and_brackets_the_entities(model, capsys):
    m, path, lines = model
    out = cli_out(capsys, "--model", m, "--input", path).splitlines()
    tagger = load_tagger(m)
    assert out == [inline_text(line, tagger.tag(line)) for line in lines]
    assert any("[" in o for o in out)
    for o, line in zip(out, lines):
        plain = o
        for typ in ("PER", "LOC", "ORG", "MISC"):
            plain = plain.replace("]" + typ, "")
        assert plain.replace("[", "") == line  # only the brackets were added
    text = "Mr. Smith of Acme Corp. visited  the U.S. Senate."  # an argument: the same
    assert cli_out(capsys, "--model", m, text) == inline_text(text, tagger.tag(text)) + "\n"


@pytest.mark.slow
def test_conll_input_offsets_are_into_the_words_joined_by_spaces(model, tmp_path, capsys):
    m, _, _ = model
    conll = tmp_path / "in.conll"
    sentences = read_conll(data_file("conll2003", "eng.train"))[:20]
    conll.write_text("".join("".join(f"{w} O\n" for w in s.words) + "\n" for s in sentences))
    out = cli_out(capsys, "--model", m, "--input", conll, "--input-format", "conll", "--format", "json")
    rows = [json.loads(r) for r in out.splitlines()]
    assert [r["words"] for r in rows] == [s.words for s in sentences]
    assert sum(len(r["entities"]) for r in rows) > 0
    for r in rows:
        joined = " ".join(r["words"])
        assert r["sentences"] == [[0, len(r["words"])]]
        for e in r["entities"]:
            assert (
                e["text"]
                == joined[e["char_start"] : e["char_end"]]
                == " ".join(r["words"][e["start"] : e["end"]])
            )


@pytest.mark.slow
def test_the_readme_example_runs(model, capsys):
    """The README's Python example of tagging raw text, on this tiny model (test_readme runs the
    blocks that need no model)."""
    import re
    from pathlib import Path

    m, path, lines = model
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```py\n(.*?)```", readme, flags=re.S) if "load_tagger" in b]
    namespace = {}
    exec(block.replace('"runs/ner"', repr(str(m))).replace('"article.txt"', repr(str(path))), namespace)  # noqa: S102
    assert namespace["words"] == ["They", "wo", "n't", "come", "."]
    assert len(capsys.readouterr().out.splitlines()) >= len(lines)
