"""A trained tagger as an object: load it, tag text, look inside it.

``load_tagger(DIR)`` reads a model directory written by training (safetensors weights and
JSON only). Tagging runs in blocks of sentences, each with its own form table, and each block
in batches of at most ``batch_size`` sentences and ``max_words`` padded words, so memory stays
bounded however long the input or its lines are.

Raw text goes in through `Tagger.tag` (one string) and `Tagger.tag_many` (a stream of strings):
each is cut into tokens and sentences by `bptt.io.text` with the model's own abbreviations, each
sentence is tagged alone, and the entities come back as `Entity(type, text, char_start, char_end)`
with offsets into the string. ``bptt tag`` runs the same `Tagger.tag_segmented`.

A Tagger computes its logits through one function, ``logits(batch, tables) -> Z_y``: bptt's network
by default, or an exported ONNX file run by onnxruntime (``load_tagger("tagger.onnx")``,
`bptt.export.onnx_runtime`); everything after the logits is the same code.
"""

from __future__ import annotations

import collections
import functools
import os
from typing import NamedTuple

import numpy as np

from ..diagnostics.ledger import jacobian_reach, reach_by_distance
from ..errors import BpttError
from ..io.conll import from_iob2, spans, to_iob2
from ..io.text import ABBREVIATIONS, Segmented, segment, vocabulary_abbreviations
from .tagger_network import (
    Tables,
    TaggerConfig,
    batch_losses,
    decode,
    make_batch,
    output_proba,
    param_shapes,
    tagger_backward,
    tagger_forward,
)
from .vocab import FormTable, Vocab

CHUNK = 2000  # sentences per form table while tagging a stream
MAX_WORDS = 10_000  # longest sentence accepted (the recurrence is a Python loop over words)
BATCH_WORDS = 8192  # padded words (T · B) in one batch while tagging: 128 sentences of 64 words


def check_length(words, where):
    """Refuse a sentence too long to tag, naming where it is (``file:LINE``, ``sentences[i]``)."""
    if len(words) > MAX_WORDS:
        raise BpttError(f"{where}: {len(words)} words; at most {MAX_WORDS} in one sentence")


def word_batches(lengths, batch_size, max_words=BATCH_WORDS):
    """Sentence indices grouped by length: at most ``batch_size`` sentences and, padded to the
    longest, at most ``max_words`` words a batch (a longer sentence is a batch alone).

    Returns: list of index arrays, every index once, each batch in ascending length.
    """
    lengths = np.asarray(lengths)
    batches, current = [], []
    for i in np.argsort(lengths, kind="stable"):  # ascending: the newest is the longest
        if current and (len(current) == batch_size or (len(current) + 1) * lengths[i] > max_words):
            batches.append(np.array(current))
            current = []
        current.append(i)
    if current:
        batches.append(np.array(current))
    return batches


def tables_for(vocab, form_table):
    word, case, chars, n_chars = form_table.arrays()
    return Tables(word, case, chars, n_chars, vocab.singleton)


class Entity(NamedTuple):
    """A name found in a text."""

    type: str  # PER, LOC, ORG, MISC (what the model was trained on)
    text: str  # the text's own characters: text[char_start:char_end]
    char_start: int  # offset of its first character in the text
    char_end: int  # offset just after its last character (end exclusive)


class Tagged(NamedTuple):
    """One text tagged: its tokens and sentences, a tag per token and the entities."""

    segmented: Segmented  # the text, its tokens (with offsets) and sentences
    tags: list  # a tag per token in the model's scheme, each sentence tagged alone
    spans: list  # (type, first token, end token) of each entity
    entities: list  # an Entity per span, offsets into the text


class Tagger:
    """A trained model: parameters, network shape, vocabularies and the data's tag scheme."""

    def __init__(self, params, cfg, vocab, scheme="IOB2", meta=None, logits=None):
        self.params = params  # None for an exported file: it tags, but cannot be looked inside
        self.cfg = cfg
        self.vocab = vocab
        self.scheme = scheme  # the training file's scheme: tags are written back in it
        self.meta = meta or {}
        # (batch, tables) -> Z_y (T, B, n_y): bptt's network, or an exported file's runtime
        self.logits = self._network_logits if logits is None else logits

    def _network_logits(self, batch, tables):
        return tagger_forward(self.params, self.cfg, batch, tables)[0]

    def _need_params(self, what):
        if self.params is None:  # an exported file: the network's insides are not there
            where = self.meta.get("onnx", "this tagger")
            raise BpttError(f"{what}: needs a model directory; {where} is an exported file: it tags only")

    # ---------------------------------------------------------------- tagging
    def predict(self, sentences, batch_size=128, max_words=BATCH_WORDS, part=None):
        """IOB2 tags for each sentence (a list of words), in batches of ``word_batches``.

        part: ``(i, n)`` to tag only batches i, i + n, i + 2n, ... (a process's part of the work;
        each batch is computed exactly as without ``part``), the other sentences' tags None.
        Returns: list of tag lists, in the input order.
        """
        if isinstance(sentences, (str, bytes)) or not hasattr(sentences, "__iter__"):
            raise BpttError(
                f"sentences: expected a list of sentences (lists of words), got {type(sentences).__name__}"
            )
        sentences = list(sentences)
        for i, s in enumerate(sentences):
            if not isinstance(s, (list, tuple)) or not all(isinstance(w, str) for w in s):
                got = type(s).__name__ if not isinstance(s, (list, tuple)) else "a word that is not a string"
                raise BpttError(f"sentences[{i}]: expected a list of words (strings), got {got}")
            if len(s) == 0:
                raise BpttError(f"sentences[{i}]: empty sentence")
            check_length(s, f"sentences[{i}]")
        out = [None] * len(sentences)
        table = FormTable(self.vocab)
        forms = [table.encode(s) for s in sentences]
        tables = tables_for(self.vocab, table)
        for k, index in enumerate(word_batches([len(f) for f in forms], batch_size, max_words)):
            if part is not None and k % part[1] != part[0]:
                continue
            batch = make_batch(forms, None, index)
            proba = output_proba(self.logits(batch, tables), self.cfg)
            for i, tags in zip(index, decode(self.cfg, proba, batch.lengths)):
                out[i] = tags
        return out

    def tag_stream(self, sentences, chunk=CHUNK, ready=None):
        """Yield (words, tags in the model's scheme) for an iterable of sentences (see `tag_blocks`)."""
        for block in self.tag_blocks(sentences, chunk, ready):
            yield from block

    def tag_blocks(self, sentences, chunk=CHUNK, ready=None):
        """Tag a stream block by block: a list of (words, tags in the model's scheme) per block.

        A block is ``chunk`` sentences, or fewer when ``ready()`` (called after each sentence) says
        the next one has not arrived yet: interactive input is answered sentence by sentence,
        a file in blocks. An empty sentence gets no tags (it keeps its place in the output).
        """
        block = []
        for words in sentences:
            block.append(words)
            if len(block) >= chunk or (ready is not None and not ready()):
                yield self._tag_block(block)
                block = []
        if block:
            yield self._tag_block(block)

    def _tag_block(self, block):
        full = [words for words in block if len(words)]
        tags = iter(self.predict(full) if full else ())
        return [(words, self.output_tags(next(tags)) if len(words) else []) for words in block]

    def output_tags(self, tags_iob2):
        return from_iob2(tags_iob2, self.scheme)

    # ---------------------------------------------------------------- raw text
    @functools.cached_property
    def abbreviations(self):
        """Words that keep their period for this model ("u.s", "corp", lower case, no period):
        `text.ABBREVIATIONS` and the words of its vocabulary that end in "." (its training data's)."""
        return ABBREVIATIONS | vocabulary_abbreviations(self.vocab.words)

    def segment(self, text):
        """Cut raw text into tokens and sentences as this model's training data was (`text.segment`)."""
        return segment(text, self.abbreviations)

    def tag(self, text):
        """The entities of a text: one or more sentences, and lines (a line break ends a sentence).

        Returns: list of Entity(type, text, char_start, char_end), offsets into ``text``.
        """
        return next(self.tag_segmented([self._segment_checked(text, "text")])).entities

    def tag_many(self, texts, chunk=CHUNK):
        """The entities of each text of an iterable, lazily: texts are read and tagged in blocks of
        ``chunk`` sentences, so a stream of any length takes bounded memory. Same as ``bptt tag``.

        Returns: iterator of lists of Entity, one list per text, in order.
        """
        if isinstance(texts, (str, bytes)):
            raise BpttError("texts: expected an iterable of strings, got one string (use tag)")
        tagged = self.tag_segmented(self._segments(iter(texts)), chunk)
        return (t.entities for t in tagged)

    def _segments(self, texts):
        for i, text in enumerate(texts):
            yield self._segment_checked(text, f"texts[{i}]")

    def _segment_checked(self, text, where):
        """`segment`, refusing what is not a string or has a sentence too long to tag."""
        if not isinstance(text, str):
            raise BpttError(f"{where}: expected a string, got {type(text).__name__}")
        seg = self.segment(text)
        for a, b in seg.sentences:
            check_length(seg.tokens[a:b], where)
        return seg

    def tag_segmented(self, segmented, chunk=CHUNK, ready=None):
        """Tag a stream of `text.Segmented` texts, each sentence alone: a Tagged per text, in order.

        The sentences of all texts go through `tag_blocks` (``chunk`` and ``ready`` as there; the
        sentences of one text count as arrived together), and a text comes back as soon as its last
        sentence is tagged; a text without a sentence keeps its place.
        Returns: iterator of Tagged.
        """
        pending = collections.deque()  # (text, tags of its sentences so far), in order
        more = False  # has the text being read more sentences after the one just given?

        def sentences():
            nonlocal more
            for seg in segmented:
                pending.append((seg, []))
                more = False
                if not seg.sentences:
                    yield []  # keeps the text's place
                for k, (a, b) in enumerate(seg.sentences):
                    more = k < len(seg.sentences) - 1
                    yield [t.text for t in seg.tokens[a:b]]

        arrived = None if ready is None else (lambda: more or ready())
        for block in self.tag_blocks(sentences(), chunk, arrived):
            for _, tags in block:
                seg, done = pending[0]
                done.append(tags)
                if len(done) >= len(seg.sentences):
                    pending.popleft()
                    yield self._tagged(seg, done)

    def _tagged(self, seg, sentence_tags):
        iob2 = [t for tags in sentence_tags[: len(seg.sentences)] for t in to_iob2(tags, self.scheme)]
        found = spans(iob2)  # B- starts every entity: none runs from one sentence into the next
        tokens, text = seg.tokens, seg.text
        entities = [
            Entity(typ, text[tokens[s].start : tokens[e - 1].end], tokens[s].start, tokens[e - 1].end)
            for typ, s, e in found
        ]
        return Tagged(seg, self.output_tags(iob2) if iob2 else [], found, entities)

    # ---------------------------------------------------------------- looking inside
    def _single(self, words, gold=None):
        table = FormTable(self.vocab)
        forms = [table.encode(words)]
        labels = None
        if gold is not None:
            labels = [np.asarray([self.label_of(t) for t in gold])]
        return make_batch(forms, labels, [0]), tables_for(self.vocab, table)

    def label_of(self, tag):
        """Class id of an IOB2 tag for this model's output."""
        if self.cfg.task == "person" and not self.cfg.aux_tags:
            return int(tag.endswith("-PER"))
        try:
            return (self.cfg.aux_tags or self.cfg.tags).index(tag)
        except ValueError:
            raise BpttError(f"tag {tag!r} is not one of the model's tags {self.cfg.tags}") from None

    def trace(self, words, gold=None):
        """Per-step values of one sentence for the unrolled graph.

        gold: IOB2 tags, or None to measure the loss against the model's own prediction.
        Returns: dict with words, y_hat, predicted, gold, L_t, message_norms, title.
        """
        self._need_params("the unrolled graph")
        words = list(words)
        if not words:
            raise BpttError("sentence: empty; give at least one word")
        predicted = self.predict([words])[0]
        batch, tables = self._single(words, gold if gold is not None else predicted)
        Z_y, cache = tagger_forward(self.params, self.cfg, batch, tables)
        L_t, dZ = batch_losses(Z_y, self.cfg, batch)
        proba = output_proba(Z_y, self.cfg)[:, 0]  # (T,) or (T, n_tags)
        y_hat = proba if self.cfg.task == "person" else proba.max(axis=1)  # the predicted class's ŷ
        _, M = tagger_backward(dZ, self.params, self.cfg, cache, messages=True)
        norms = [[float(v) for v in np.linalg.norm(m[:, 0], axis=1)] for m in self.cfg.word_cell.fields(M)]
        return {
            "words": words,
            "y_hat": [float(v) for v in y_hat],
            "predicted": predicted,
            "gold": list(gold) if gold is not None else None,
            "L_t": [float(v) for v in L_t[:, 0]],
            "message_norms": norms[0],  # ‖∂L/∂a⟨t⟩‖
            "cell_message_norms": norms[1] if len(norms) > 1 else None,  # ‖∂L/∂c⟨t⟩‖ (LSTM)
            "cell": self.cfg.cell,
            "title": f"bptt {self.cfg.task} tagger",
        }

    def reach_profile(self, sentences, K=40):
        """How far back gradients reach: mean ‖∂s→⟨n⟩/∂s→⟨n−d⟩‖₂ (spectral norm) for d = 0..K−1.

        s→ is the state of layer 1's forward direction (a⟨t⟩, or [a⟨t⟩; c⟨t⟩] for an LSTM) and n
        the last of a sentence's first K words; the Jacobian is the product of the cell's step
        Jacobians (`bptt.diagnostics.ledger.jacobian_reach`). A norm falling towards 0 with d is a vanishing
        gradient, growing is exploding.
        Returns: (K,) array, NaN where no sentence is that long.
        """
        self._need_params("the reach profile")
        sentences = [list(words)[:K] for words in sentences if len(words)]
        out = np.full(K, np.nan)
        if not sentences:
            return out
        table = FormTable(self.vocab)
        forms = [table.encode(words) for words in sentences]
        batch = make_batch(forms, None, np.arange(len(forms)))
        _, cache = tagger_forward(self.params, self.cfg, batch, tables_for(self.vocab, table))
        fwd = cache.layer_caches[0].forward if self.cfg.bidirectional else cache.layer_caches[0]
        reach = reach_by_distance(jacobian_reach(self.cfg.word_cell, fwd), batch.mask)  # (T,)
        out[: len(reach)] = reach
        return out


# the settings file each other command's run directory holds, and what reads it
OTHER_MODELS = {
    "lm.json": "a language model of bptt lm train (bptt lm evaluate and bptt sample read it)",
    "dates.json": "a date model of bptt dates train (bptt dates convert reads it)",
    "longrange.json": "a run of bptt longrange",
}


def check_not_another_model(directory):
    """Refuse, in one line, a run directory of another command where a tagger's is expected."""
    if os.path.isdir(directory) and not os.path.exists(os.path.join(directory, "config.json")):
        for name, what in OTHER_MODELS.items():
            if os.path.exists(os.path.join(directory, name)):
                raise BpttError(f"{directory}: {what}, not a tagger of bptt train")


def load_tagger(directory, threads=1):
    """Load a model directory written by ``bptt train``, or an ``.onnx`` file written by ``bptt export``
    (run by onnxruntime with ``threads`` threads; `bptt.export.onnx_runtime`). Returns: Tagger.

    Every size is checked before it costs anything: config.json's fields by `TaggerConfig.from_json`,
    vocab.json by `Vocab.from_json`, and the parameter shapes they imply (`param_shapes`) against the
    weight file's header before a tensor is allocated. So loading costs what the files hold.
    """
    if os.fspath(directory).endswith(".onnx") and not os.path.isdir(directory):
        from ..export.onnx_runtime import load_onnx_tagger

        return load_onnx_tagger(directory, threads)
    from ..io.conll import SCHEMES
    from ..io.modelfiles import CONFIG, VOCAB, WEIGHTS, load_model_dir

    check_not_another_model(directory)

    config_file, vocab_file = os.path.join(directory, CONFIG), os.path.join(directory, VOCAB)
    cfg = vocab = None

    def shapes(config, vocab_json):  # called by load_model_dir before it reads a tensor
        nonlocal cfg, vocab
        cfg = TaggerConfig.from_json(config.get("tagger"), f"{config_file}: tagger")
        vocab = Vocab.from_json(vocab_json, vocab_file)
        return param_shapes(cfg, len(vocab.words), len(vocab.chars))

    arrays, config, _ = load_model_dir(directory, expect=shapes)
    scheme = config.get("scheme", "IOB2")
    if scheme not in SCHEMES:
        raise BpttError(f"{config_file}: scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r:.60}")
    weights = os.path.join(directory, WEIGHTS)
    for k, a in arrays.items():
        if a.dtype not in (np.float32, np.float64):
            raise BpttError(f"{weights}: tensor {k!r} is {a.dtype}, expected float32 or float64")
        if not np.isfinite(a).all():
            raise BpttError(f"{weights}: tensor {k!r} contains NaN or Inf")
    names = [k for k, _ in param_shapes(cfg, len(vocab.words), len(vocab.chars))]  # init's order
    params = {k: np.ascontiguousarray(arrays[k]) for k in names}
    return Tagger(params, cfg, vocab, scheme, config)
