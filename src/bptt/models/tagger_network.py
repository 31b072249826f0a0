"""The sequence tagger: embeddings → bidirectional recurrent layers → a per-word output.

For a sentence of words w⟨1⟩ … w⟨T⟩:

    x⟨t⟩ = [E_word[word(w⟨t⟩)]; E_case[casing(w⟨t⟩)]; c(w⟨t⟩)]        (dropout on x⟨t⟩)
    c(w) = [c→⟨last⟩; c←⟨first⟩]   a bidirectional character RNN over the letters of w
    a⟨t⟩ = [a→⟨t⟩; a←⟨t⟩]            the chosen cell, both directions, one or more layers
    ŷ⟨t⟩ = σ(W_ya a⟨t⟩ + b_y)        task "person": P(word t is part of a person's name)
    ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y)  task "ner": a distribution over the IOB2 tags

The person task may also learn the other entity types (``aux``, the default): W_ya gets one row
per IOB2 tag of the training file (``aux_tags``) below the person row, read as a second,
softmax output, and L⟨t⟩ adds its cross-entropy to the logistic loss. The person output and
its decoding are unchanged; the extra supervision teaches the layers what names look like
from every type of name (it raises F1 on names never seen in training, BENCHMARKS.md).

The word layers run the cell ``TaggerConfig.cell`` names: "rnn" (the lecture's, with g =
``activation``), "gru" or "lstm" (``bptt.cells``); each direction carries that cell's state.
The character RNN is always the vanilla cell (with g = ``activation``): words are short, and
its job — spelling features — needs no gates; so a tagger's character part is the same
whatever its word cell.

The loss is the lecture's L = Σ_t L⟨t⟩ per sentence, averaged over the sentences of a
batch. Every backward here is the forward read in reverse; the recurrences themselves
are the cells' ``fast_forward``/``fast_backward``. Parameters live in one flat dict:
``E_word``, ``E_case``, ``E_char``, ``char.f.W_ax`` … (character RNN, forward/backward),
``rnn1.f.W_ax`` … (layer 1; the cell's keys, and ``rnn1.f.b_hn`` for a GRU), ``W_ya``, ``b_y``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from ..cells import CELLS, get_cell
from ..config import Checked, flag, number, one_of
from ..drivers.bidirectional import birnn_backward, birnn_forward, rnn_backward_any
from ..drivers.rnn import ACTIVATIONS
from ..errors import BpttError
from ..heads.classification import output_backward, output_logits, sigmoid, softmax, step_losses
from .layers import RowGrad, dropout_backward, dropout_forward, embedding_backward
from .vocab import CASINGS, UNK

TASKS = ("person", "ner")
INITS = ("default", "forget1")  # the word cell's initialisation (forget1: the LSTM's forget-gate bias 1)


def _tags(v, empty=False):
    ok = isinstance(v, (list, tuple)) and (empty or len(v) > 0)
    return ok and all(isinstance(t, str) and t for t in v) and len(set(v)) == len(v)


# every field of TaggerConfig: (its check, what it must be); checked on construction, so a crafted
# config.json (its self_sha256 recomputed) fails here with one line, before anything is sized by it
_RULES = {
    "task": one_of(TASKS),
    "tags": (_tags, "a non-empty list of distinct non-empty strings"),
    "aux": flag(),
    "aux_tags": (lambda v: _tags(v, empty=True), "a list of distinct non-empty strings"),
    "word_dim": number(1, integer=True),
    "case_dim": number(0, integer=True),
    "char_dim": number(0, integer=True),
    "char_hidden": number(0, integer=True),
    "hidden": number(1, integer=True),
    "layers": number(1, integer=True),
    "bidirectional": flag(),
    "cell": one_of(tuple(CELLS)),
    "init": one_of(INITS),
    "activation": one_of(tuple(ACTIVATIONS)),
    "dropout": number(0, 1, below=True),
    "unk_replace": number(0, 1),
    "word_dropout": number(0, 1, below=True),
}


@dataclass
class TaggerConfig(Checked):
    """The network's shape. Defaults are the configuration benchmarked in BENCHMARKS.md.

    Every field is checked on construction (`BpttError` naming the field); `from_json` also
    refuses missing and unknown fields.
    """

    task: str = "person"  # "person": sigmoid + logistic loss per word; "ner": softmax over IOB2 tags
    tags: list = field(default_factory=lambda: ["O", "PER"])  # output classes (ner: IOB2 tags)
    aux: bool = True  # person: also learn every entity type of the training file (a second, softmax output)
    aux_tags: list = field(default_factory=list)  # that output's IOB2 tags (set from the training file)
    word_dim: int = 100  # word embedding size
    case_dim: int = 8  # casing embedding size (0: no casing feature)
    char_dim: int = 25  # character embedding size (0: no character features)
    char_hidden: int = 25  # character RNN units per direction
    hidden: int = 128  # word RNN units per direction (n_a)
    layers: int = 2  # stacked recurrent layers
    bidirectional: bool = True  # also read each sentence right to left
    cell: str = "lstm"  # the word layers' cell: "lstm" (best on CoNLL), "gru" or "rnn" (the lecture's)
    init: str = "default"  # the word cell's initialisation: "default" (PyTorch's), "forget1" (LSTM only)
    activation: str = "tanh"  # the vanilla cell's g, "tanh" or "relu": cell "rnn"'s layers, and chars
    dropout: float = 0.5  # on the inputs of every layer and on the top layer's output
    unk_replace: float = 0.5  # training: a word seen once becomes <unk> with this probability
    word_dropout: float = 0.2  # training: any word becomes <unk> with this probability

    RULES = _RULES
    # model directories and runs from before the choice of cell, and of the auxiliary output
    ADDED = {"cell": "rnn", "init": "default", "aux": False, "aux_tags": []}
    KIND, WHERE = "the tagger's settings", "tagger"
    HINT = " (not a tagger's model directory?)"

    def __post_init__(self):
        super().__post_init__()
        if self.char_dim and not self.char_hidden:  # char_dim 0 turns the character RNN off, units and all
            raise BpttError(
                f"char_hidden: expected an integer >= 1 when char_dim is {self.char_dim} (char_dim 0 turns"
                " the character RNN off), got 0"
            )
        if self.aux_tags and self.task != "person":
            raise BpttError(f"aux_tags: only the person task has an auxiliary output, got task {self.task!r}")
        if self.aux_tags and "O" not in self.aux_tags:
            raise BpttError(f"aux_tags: expected IOB2 tags including 'O', got {self.aux_tags[:5]}")
        cell = self.word_cell  # only the vanilla cell takes an activation
        takes = [init for init in cell.inits if init in INITS]  # the tagger offers only INITS
        if self.init not in takes:
            raise BpttError(f"init: {cell.title} takes {' or '.join(map(repr, takes))}, got {self.init!r}")

    def to_json(self):
        return asdict(self)

    @property
    def word_cell(self):
        """The ``Cell`` of the word layers."""
        return get_cell(self.cell, self.activation)

    @property
    def char_cell(self):
        """The ``Cell`` of the character RNN: always the vanilla one."""
        return get_cell("rnn", self.activation)

    @property
    def n_y(self):
        """Rows of W_ya: person 1 (+ the auxiliary tags), ner one per tag."""
        return 1 + len(self.aux_tags) if self.task == "person" else len(self.tags)

    def person_of_aux(self):
        """(len(aux_tags),) int64: 1 where the auxiliary tag is part of a person's name."""
        return np.array([t.endswith("-PER") for t in self.aux_tags], dtype=np.int64)

    @property
    def directions(self):
        return ("f", "b") if self.bidirectional else ("f",)


class Batch(NamedTuple):
    forms: np.ndarray  # (T, B) form ids, 0 = padding
    mask: np.ndarray  # (T, B) bool, True on real words
    lengths: np.ndarray  # (B,)
    labels: np.ndarray  # (T, B) class ids (person: 0/1), 0 on padding
    index: np.ndarray  # (B,) positions of the sentences in their list


class Tables(NamedTuple):
    """Per-form lookups from ``FormTable.arrays()``, and the vocabulary's singletons."""

    word: np.ndarray  # (F,)
    case: np.ndarray  # (F,)
    chars: np.ndarray  # (F, MAX_CHARS)
    n_chars: np.ndarray  # (F,)
    singleton: np.ndarray  # (V,) bool by word id: seen once in training


def make_batch(form_seqs, label_seqs, index):
    """Pad the chosen sentences into time-major arrays."""
    lengths = np.array([len(form_seqs[i]) for i in index])
    T, B = int(lengths.max()), len(index)
    forms = np.zeros((T, B), dtype=np.int64)
    labels = np.zeros((T, B), dtype=np.int64)
    for b, i in enumerate(index):
        forms[: lengths[b], b] = form_seqs[i]
        if label_seqs is not None:
            labels[: lengths[b], b] = label_seqs[i]
    mask = np.arange(T)[:, None] < lengths[None, :]
    return Batch(forms, mask, lengths, labels, np.asarray(index))


def batch_part(batch, lo, hi):
    """Sentences ``lo:hi`` of a batch, padded to the batch's length T (truncated BPTT cuts the
    right-to-left pass, which runs over padded reversed time, every k steps from T: so where the
    whole batch's would).

    Returns: Batch.
    """
    part = lambda a: np.ascontiguousarray(a[:, lo:hi])  # noqa: E731  (T, B') of (T, B)
    return Batch(
        part(batch.forms), part(batch.mask), batch.lengths[lo:hi], part(batch.labels), batch.index[lo:hi]
    )


def batch_indices(lengths, batch_size, rng=None):
    """Sentence indices grouped by similar length; shuffled (deterministically) when rng is given.

    Returns: list of index arrays.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:  # sort by a jittered length so the buckets differ between epochs
        order = np.argsort(lengths + rng.uniform(0, 2, size=lengths.size), kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def param_shapes(cfg, n_words, n_chars):
    """The name and shape of every parameter, in the order `init_tagger_params` draws them.

    Allocates nothing, and yields one at a time: a loader compares them with a weight file's
    header and stops at the first difference, however many layers a crafted config claims.
    Yields: (name, shape).
    """

    def recurrent(prefix, cell, n_x, n_a, directions):
        for d in directions:  # the cell's parameters, W_ax first
            for name, shape in cell.param_shapes(n_x, n_a).items():
                yield f"{prefix}.{d}.{name}", shape

    yield "E_word", (n_words, cfg.word_dim)
    n_x = cfg.word_dim
    if cfg.case_dim:
        yield "E_case", (len(CASINGS), cfg.case_dim)
        n_x += cfg.case_dim
    if cfg.char_dim:
        yield "E_char", (n_chars, cfg.char_dim)
        yield from recurrent("char", cfg.char_cell, cfg.char_dim, cfg.char_hidden, ("f", "b"))
        n_x += 2 * cfg.char_hidden
    width = cfg.hidden * len(cfg.directions)
    for layer in range(1, cfg.layers + 1):
        yield from recurrent(
            f"rnn{layer}", cfg.word_cell, n_x if layer == 1 else width, cfg.hidden, cfg.directions
        )
    yield "W_ya", (cfg.n_y, width)
    yield "b_y", (cfg.n_y,)


def init_tagger_params(cfg, n_words, n_chars, seed=0, dtype=np.float32, pretrained=None):
    """Initial parameters: embeddings ~ N(0, 0.1²) (or the pretrained rows), each direction of a
    recurrent layer as its cell draws it (``Cell.init``: PyTorch's defaults, zero b_a for the
    vanilla cell; the word cell with ``cfg.init``), the head as ``torch.nn.Linear``'s weight and b_y = 0.
    """
    rng = np.random.default_rng(seed)
    p, blocks = {}, {}
    for name, shape in param_shapes(cfg, n_words, n_chars):
        prefix, _, kind = name.rpartition(".")  # "rnn1.f", "W_ax"; "", "E_word"
        if prefix:  # a direction of a recurrent layer, drawn whole at its first parameter, W_ax (k·n_a, n_x)
            if prefix not in blocks:
                char = prefix.startswith("char.")
                cell = cfg.char_cell if char else cfg.word_cell
                n_a = shape[0] // cell.gates
                blocks[prefix] = cell.init(shape[1], n_a, rng, dtype, "default" if char else cfg.init)
            p[name] = blocks[prefix][kind]
        elif kind.startswith("E_"):
            p[name] = (0.1 * rng.standard_normal(shape)).astype(dtype)
        elif kind == "b_y":
            p[name] = np.zeros(shape, dtype=dtype)
        else:  # W_ya: U(±1/√fan_in), torch.nn.Linear's
            k = 1 / np.sqrt(shape[1])
            p[name] = rng.uniform(-k, k, size=shape).astype(dtype)
    if pretrained is not None:
        rows, vectors = pretrained
        p["E_word"][rows] = vectors
    p["E_word"][0] = 0
    return p


def _sub(params, prefix, cell):
    """The parameters of one direction of a recurrent layer, under the cell's names."""
    return {k: params[f"{prefix}.{k}"] for k in cell.keys}


def _layer_forward(X, mask, params, prefix, cfg):
    cell = cfg.word_cell
    if cfg.bidirectional:
        pf, pb = _sub(params, f"{prefix}.f", cell), _sub(params, f"{prefix}.b", cell)
        return birnn_forward(X, mask, pf, pb, cfg.activation, cfg.cell)
    state0 = cell.zero_state(X.shape[1], cfg.hidden, X.dtype)
    return cell.fast_forward(X, state0, _sub(params, f"{prefix}.f", cell), mask)


def _layer_backward(dA, cache, prefix, cfg, need_dX, messages, truncate=None):
    if cfg.bidirectional:
        dX, gf, gb, M = birnn_backward(dA, cache, need_dX=need_dX, messages=messages, truncate=truncate)
        grads = {f"{prefix}.f.{k}": v for k, v in gf.items()}
        grads.update({f"{prefix}.b.{k}": v for k, v in gb.items()})
        return dX, grads, M
    dX, _, g, M = rnn_backward_any(dA, cache, None, messages, need_dX, truncate)
    return dX, {f"{prefix}.f.{k}": v for k, v in g.items()}, M


class TaggerCache(NamedTuple):
    words: np.ndarray
    cases: np.ndarray
    chars: object  # (char ids (Lc, U), unique inverse (T, B), char BiRNN cache) or None
    keeps: list  # dropout masks: inputs of each layer, then the top output
    layer_caches: list
    A_top: np.ndarray  # (T, B, width) after dropout: what the head read
    widths: tuple  # sizes of the parts of x⟨t⟩


def tagger_forward(params, cfg, batch, tables, rng=None):
    """Logits for every word. ``rng`` switches on training: dropout and <unk> replacement (a NumPy
    Generator, or anything with its ``random(shape, dtype)``: a process's `parallel.ShareDraws`).

    Shapes: batch.forms (T, B).
    Returns: Z_y (T, B, n_y), cache.
    """
    forms, mask = batch.forms, batch.mask
    T, B = forms.shape
    words = tables.word[forms]  # (T, B)
    if rng is not None and (cfg.unk_replace or cfg.word_dropout):  # so that <unk> gets trained
        r = rng.random((T, B))
        drop = (tables.singleton[words] & (r < cfg.unk_replace)) | (r < cfg.word_dropout)
        words = np.where(drop & mask, UNK, words)
    parts = [params["E_word"][words]]  # (T, B, word_dim)
    cases = tables.case[forms]
    if cfg.case_dim:
        parts.append(params["E_case"][cases])  # (T, B, case_dim)
    chars = None
    if cfg.char_dim:
        uniq, inverse = np.unique(forms, return_inverse=True)  # each distinct form once
        n_chars = tables.n_chars[uniq]
        Lc = max(int(n_chars.max()), 1)
        char_ids = tables.chars[uniq, :Lc].T  # (Lc, U) time-major
        cmask = np.arange(Lc)[:, None] < n_chars[None, :]
        Ac, cache_c = birnn_forward(
            params["E_char"][char_ids],
            cmask,
            _sub(params, "char.f", cfg.char_cell),
            _sub(params, "char.b", cfg.char_cell),
            cfg.activation,
        )
        n = cfg.char_hidden
        H = np.concatenate([Ac[-1, :, :n], Ac[0, :, n:]], axis=1)  # (U, 2 n_c) both final states
        parts.append(H[inverse.reshape(T, B)])  # (T, B, 2 n_c)
        chars = (char_ids, inverse.reshape(T, B), cache_c)
    widths = tuple(x.shape[2] for x in parts)
    X = np.concatenate(parts, axis=2)  # (T, B, n_x)
    keeps, caches = [], []
    for layer in range(1, cfg.layers + 1):
        X, keep = dropout_forward(X, cfg.dropout, rng)
        keeps.append(keep)
        X, cache = _layer_forward(X, mask, params, f"rnn{layer}", cfg)
        caches.append(cache)
    A_top, keep = dropout_forward(X, cfg.dropout, rng)
    keeps.append(keep)
    Z_y = output_logits(A_top, params)  # (T, B, n_y)
    return Z_y, TaggerCache(words, cases, chars, keeps, caches, A_top, widths)


def tagger_backward(dZ_y, params, cfg, cache, dense=False, messages=False, truncate=None):
    """Gradients of every parameter from ∂L/∂Z_y.

    truncate: cut the word-level messages every this many steps (truncated BPTT), or None.
    Returns: grads (embedding tables as RowGrad unless ``dense``), and layer 1's forward
    messages when ``messages``: ∂L/∂a→⟨t⟩ (T, B, hidden), or for "lstm" the pair with ∂L/∂c→⟨t⟩.
    """
    dA, grads = output_backward(dZ_y, cache.A_top, params)  # backprop through the head
    dA = dropout_backward(dA, cache.keeps[-1])
    M = None
    for layer in range(cfg.layers, 0, -1):
        dX, g, m = _layer_backward(
            dA, cache.layer_caches[layer - 1], f"rnn{layer}", cfg, True, messages and layer == 1, truncate
        )
        grads.update(g)
        M = m if layer == 1 else M
        dA = dropout_backward(dX, cache.keeps[layer - 1])  # backprop through the layer's input dropout
    # dA is now ∂L/∂x⟨t⟩: split it back into its parts
    offsets = np.cumsum((0,) + cache.widths)
    dparts = [dA[:, :, offsets[i] : offsets[i + 1]] for i in range(len(cache.widths))]
    grads["E_word"] = embedding_backward(dparts[0], cache.words, params["E_word"].shape[0])
    i = 1
    if cfg.case_dim:
        grads["E_case"] = embedding_backward(dparts[i], cache.cases, params["E_case"].shape[0])
        i += 1
    if cfg.char_dim:
        char_ids, inverse, cache_c = cache.chars
        n = cfg.char_hidden
        U = char_ids.shape[1]
        dH = np.zeros((U, 2 * n), dtype=dA.dtype)
        np.add.at(dH, inverse.reshape(-1), dparts[i].reshape(-1, 2 * n))  # backprop through the gather
        dAc = np.zeros((char_ids.shape[0], U, 2 * n), dtype=dA.dtype)
        dAc[0, :, n:] = dH[:, n:]  # c←⟨first⟩ is an output of the right-to-left pass
        da_T = np.concatenate([dH[:, :n], np.zeros_like(dH[:, n:])], axis=1)  # c→⟨last⟩ is its final state
        dXc, gf, gb, _ = birnn_backward(dAc, cache_c, da_T=da_T)
        grads.update({f"char.f.{k}": v for k, v in gf.items()})
        grads.update({f"char.b.{k}": v for k, v in gb.items()})
        grads["E_char"] = embedding_backward(dXc, char_ids, params["E_char"].shape[0])
    if dense:
        grads = {k: (v.dense() if isinstance(v, RowGrad) else v) for k, v in grads.items()}
    grads = {k: grads[k] for k in params}
    return grads, M


def tagger_loss(
    params, cfg, batch, tables, rng=None, dense=False, messages=False, truncate=None, mean_over=None
):
    """Mean sentence loss of a batch and its gradients.

    mean_over: the number of sentences the mean is over (default: the batch's); a process's share of a
    global batch (`bptt.training.parallel`) divides by the global batch size.
    Returns: L (float), grads, and layer 1's forward messages (or None).
    """
    Z_y, cache = tagger_forward(params, cfg, batch, tables, rng)
    L_t, dZ_y = batch_losses(Z_y, cfg, batch)
    B = batch.forms.shape[1] if mean_over is None else mean_over
    dZ_y /= B  # the mean over sentences
    grads, M = tagger_backward(dZ_y, params, cfg, cache, dense=dense, messages=messages, truncate=truncate)
    return float(L_t.sum()) / B, grads, M


def batch_losses(Z_y, cfg, batch):
    """L⟨t⟩ of every word and ∂(Σ L⟨t⟩)/∂Z_y: logistic loss (person) or cross-entropy (ner).

    With auxiliary tags (person), batch.labels are their ids: the person label is read from
    them, and L⟨t⟩ is the logistic loss of column 0 plus the cross-entropy of the other columns.
    Shapes: Z_y (T, B, n_y).
    Returns: L_t (T, B), dZ_y (T, B, n_y); zero on padding.
    """
    if cfg.task == "ner":
        return step_losses(Z_y, batch.labels, "softmax", batch.mask)
    if not cfg.aux_tags:
        return step_losses(Z_y, batch.labels[:, :, None], "sigmoid", batch.mask)
    person = cfg.person_of_aux()[batch.labels]  # (T, B)
    L_p, dZ_p = step_losses(Z_y[:, :, :1], person[:, :, None], "sigmoid", batch.mask)
    L_a, dZ_a = step_losses(Z_y[:, :, 1:], batch.labels, "softmax", batch.mask)
    return L_p + L_a, np.concatenate([dZ_p, dZ_a], axis=2)


def output_proba(Z_y, cfg):
    """ŷ⟨t⟩ from the logits: (T, B) name probabilities (person) or (T, B, n_tags) (ner)."""
    return sigmoid(Z_y[:, :, 0]) if cfg.task == "person" else softmax(Z_y)


def predict_proba(params, cfg, batch, tables):
    """ŷ⟨t⟩ for every word of a batch (see ``output_proba``)."""
    Z_y, _ = tagger_forward(params, cfg, batch, tables)
    return output_proba(Z_y, cfg)


def allowed_transitions(tags):
    """(K + 1, K) bool: may tag j follow tag i? Row K is the sentence start.

    IOB2: I-X only after B-X or I-X.
    """
    K = len(tags)
    allowed = np.ones((K + 1, K), dtype=bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            allowed[:, j] = [i < K and tags[i][2:] == tag[2:] and tags[i][0] in "BI" for i in range(K + 1)]
    return allowed


def viterbi(log_p, lengths, allowed):
    """The most probable *valid* tag sequence of every sentence (a constrained argmax).

    Shapes: log_p (T, B, K) per-word log-probabilities; allowed (K + 1, K) from ``allowed_transitions``.
    Returns: (T, B) tag ids; positions past a sentence's length are 0.
    """
    T, B, K = log_p.shape
    forbid = np.where(allowed, 0.0, -np.inf)  # (K + 1, K)
    delta = log_p[0] + forbid[K]  # (B, K) best score of a valid prefix ending in each tag
    back = np.zeros((T, B, K), dtype=np.int64)
    for t in range(1, T):
        cand = delta[:, :, None] + forbid[None, :K]  # (B, K_prev, K)
        back[t] = cand.argmax(axis=1)
        new = cand.max(axis=1) + log_p[t]
        live = (t < lengths)[:, None]  # finished sentences keep their score
        delta = np.where(live, new, delta)
    out = np.zeros((T, B), dtype=np.int64)
    best = delta.argmax(axis=1)
    for b, n in enumerate(lengths):
        k = best[b]
        for t in range(n - 1, -1, -1):
            out[t, b] = k
            k = back[t, b, k]
    return out


def decode(cfg, proba, lengths):
    """Tag sequences (IOB2 strings) from predicted probabilities, one list per sentence.

    person: a word is in a name when ŷ > 0.5, and a run of such words is one name.
    ner: the most probable valid IOB2 sequence under the per-word softmax (no I-X after O).
    """
    out = []
    if cfg.task == "person":
        for b, n in enumerate(lengths):
            on = proba[:n, b] > 0.5
            out.append(
                ["O" if not o else ("I-PER" if t and on[t - 1] else "B-PER") for t, o in enumerate(on)]
            )
        return out
    with np.errstate(divide="ignore"):
        ids = viterbi(np.log(proba), np.asarray(lengths), allowed_transitions(cfg.tags))
    return [[cfg.tags[i] for i in ids[:n, b]] for b, n in enumerate(lengths)]
