"""Character n-gram language model with interpolated Kneser–Ney smoothing: the baseline for the RNN LM.

Symbols are integers 0..V-1; a model of order n conditions each symbol on at most n-1 symbols before it.
This is "interpolated Kneser–Ney" of Chen & Goodman (1998), with one discount D for all orders.
Write h for a history of k-1 symbols, h' for h without its first symbol, and w for the next symbol.

Highest order (k = n) uses raw counts c:

    P_n(w | h) = ( max(c(hw) - D, 0) + D · N1+(h·) · P_{n-1}(w | h') ) / c(h·)

Lower orders (1 <= k < n) use continuation counts N1+(·hw) = number of distinct symbols v with c(vhw) > 0:

    P_k(w | h) = ( max(N1+(·hw) - D, 0) + D · N1+(h·) · P_{k-1}(w | h') ) / N1+(·h·)

and below order 1 is the uniform distribution, P_0(w) = 1/V, so every symbol (one never seen in training
too, e.g. an "unknown" id) has a non-zero probability. At each order the normaliser sums the counts of
that order over w (c(h·) = Σ_w c(hw), N1+(·h·) = Σ_w N1+(·hw)) and N1+(h·) is the number of w whose
count of that order is non-zero, so every P_k(· | h) sums to exactly 1 (each kept count is >= 1 > D).
A history whose normaliser is 0 at order k (never seen there) backs off entirely:
P_k(w | h) = P_{k-1}(w | h').
With n = 1 the unigram is the highest order, so it uses raw counts.

Sequences are independent: no n-gram, in training or in scoring, crosses from one sequence into the next.
At position i of a sequence the history is what exists, s[max(0, i-n+1):i]; when it is shorter than n-1
(the first n-2 positions) the position is scored by P_{i+1}(s[i] | s[0:i]), the lower-order (continuation
count) distribution of that history length, with no start-of-sequence symbol. Likewise a k-gram at the very
start of a training sequence has no left extension and adds nothing to the continuation counts.

Counting is vectorised: the k-gram ending at position i is named by an integer id, the rank of
(id of the (k-1)-gram ending at i-1) · V + s[i] among the distinct such keys (``np.unique``), so keys stay
below (number of symbols) · V whatever n is; scoring looks keys up with ``np.searchsorted``. The Python
loops run over orders and sequences, never over positions.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from bptt.errors import BpttError


class KneserNey:
    """Interpolated Kneser–Ney over integer symbols 0..V-1."""

    def __init__(self, order: int, vocab_size: int, discount: float = 0.75):
        if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
            raise BpttError(f"order: expected an integer >= 1, got {order!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size < 1:
            raise BpttError(f"vocab_size: expected an integer >= 1, got {vocab_size!r}")
        if not isinstance(discount, numbers.Real) or not 0.0 < float(discount) < 1.0:
            raise BpttError(f"discount: expected a number strictly between 0 and 1, got {discount!r}")
        self.order = int(order)
        self.vocab_size = int(vocab_size)
        self.discount = float(discount)
        # Per order k = 1..n (index k-1), filled by fit:
        self._keys = []  # sorted distinct keys (id of the history (k-1)-gram) · V + w, int64
        self._counts = []  # count of each key: raw for k = n, continuation N1+(·hw) for k < n, float64
        self._totals = []  # normaliser per history id: c(h·) or N1+(·h·), float64
        self._types = []  # N1+(h·) per history id: number of w with a non-zero count, float64

    def fit(self, sequences) -> KneserNey:
        """Count the k-grams of every order in ``sequences`` (list of 1-D int arrays), replacing old counts.

        Returns:
            self
        """
        seqs = self._check_sequences("sequences", sequences)
        s = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)  # (N,) all sequences end to end
        if s.size == 0:
            raise BpttError("sequences: no symbols to train on (empty training data)")
        if s.size * self.vocab_size >= 2**62:
            raise BpttError(f"sequences: {s.size} symbols x vocab_size {self.vocab_size} overflow int64 keys")
        V, n = self.vocab_size, self.order
        lengths = np.array([len(q) for q in seqs], dtype=np.int64)
        # offset of each position inside its own sequence: the k-gram ending at i exists iff pos >= k-1
        pos = np.arange(s.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # (N,)

        keys, counts, ids_prev = [], [], None
        for k in range(1, n + 1):
            ok = pos >= k - 1  # positions where a k-gram ends
            at = np.flatnonzero(ok)
            key = s[at] if k == 1 else ids_prev[at - 1] * V + s[at]  # (history id, symbol) as one int64
            uniq, first, inverse, raw = np.unique(
                key, return_index=True, return_inverse=True, return_counts=True
            )
            ids = np.full(s.size, -1, dtype=np.int64)
            ids[at] = inverse.reshape(-1)  # id of the k-gram ending at each position, -1 where none
            keys.append(uniq)
            counts.append(raw.astype(np.float64))
            if k >= 2:
                # continuation count of each (k-1)-gram: the distinct k-grams it is the suffix of; the
                # suffix of the k-gram ending at i is the (k-1)-gram ending at i
                suffix = ids_prev[at[first]]
                counts[k - 2] = np.bincount(suffix, minlength=len(keys[k - 2])).astype(np.float64)
            ids_prev = ids

        self._keys, self._counts, self._totals, self._types = keys, counts, [], []
        n_hist = 1  # order 1 has one history, the empty one, with id 0
        for k in range(1, n + 1):
            hist = self._keys[k - 1] // V  # history id of each distinct k-gram
            c = self._counts[k - 1]
            self._totals.append(np.bincount(hist, weights=c, minlength=n_hist))
            self._types.append(np.bincount(hist, weights=(c > 0).astype(np.float64), minlength=n_hist))
            n_hist = len(self._keys[k - 1])
        return self

    def log_probs(self, sequence, start: int = 0) -> np.ndarray:
        """Natural-log probability of sequence[i] given sequence[max(0, i-n+1):i], for i = start..len-1.

        The history is only what exists in ``sequence``: near its start it is shorter and the lower-order
        distribution of that length is used (see the module docstring).

        Shapes:
            sequence: (L,) integers in 0..V-1
        Returns:
            (L - start,) float64 natural logs, all finite
        """
        if not self._keys:
            raise BpttError("KneserNey: call fit(sequences) before log_probs()")
        s = self._check_symbols("sequence", sequence)
        if isinstance(start, bool) or not isinstance(start, numbers.Integral) or not 0 <= start <= len(s):
            raise BpttError(f"start: expected an integer in 0..{len(s)} (len(sequence)), got {start!r}")
        V, D = self.vocab_size, self.discount
        p = np.full(len(s), 1.0 / V)  # (L,) order 0: uniform
        ids = np.zeros(len(s), dtype=np.int64)  # (L,) id of the k-gram ending at i; k = 0: the empty one
        for k in range(1, self.order + 1):
            if k == 1:
                hist = ids  # the empty history exists at every position, the first included
            else:
                hist = np.full(len(s), -1, dtype=np.int64)  # (L,) id of the (k-1)-gram ending at i-1
                hist[1:] = ids[:-1]  # -1 where unseen in training or cut by the start of the sequence
            seen = hist >= 0
            key = np.where(seen, hist, 0) * V + s
            table = self._keys[k - 1]
            if len(table) == 0:  # no training sequence is k symbols long
                break
            j = np.minimum(np.searchsorted(table, key), len(table) - 1)
            found = seen & (table[j] == key)
            ids = np.where(found, j, -1)  # id of the k-gram ending at i, -1 if not in training
            total = np.where(seen, self._totals[k - 1][np.where(seen, hist, 0)], 0.0)
            use = total > 0  # a history never seen at this order backs off entirely (p stays P_{k-1})
            c = np.where(found, self._counts[k - 1][np.where(found, j, 0)], 0.0)
            types = self._types[k - 1][np.where(seen, hist, 0)]
            p = np.where(use, (np.maximum(c - D, 0.0) + D * types * p) / np.where(use, total, 1.0), p)
        return np.log(p[start:])

    def _check_symbols(self, name, x):
        """``x`` as a 1-D int64 array of symbols in 0..V-1, or a BpttError naming ``name``."""
        a = np.asarray(x)
        if a.ndim != 1:
            raise BpttError(f"{name}: expected a 1-D array of integer symbols, got shape {a.shape}")
        if a.size == 0:
            return a.astype(np.int64)
        if a.dtype.kind not in "iu":
            raise BpttError(f"{name}: expected integer symbols, got dtype {a.dtype}")
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= self.vocab_size:
            bad = lo if lo < 0 else hi
            raise BpttError(
                f"{name}: symbol {bad} is outside 0..{self.vocab_size - 1} (vocab_size {self.vocab_size})"
            )
        return a.astype(np.int64)

    def _check_sequences(self, name, sequences):
        """``sequences`` as a list of 1-D int64 arrays, or a BpttError naming ``name``."""
        if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
            raise BpttError(f"{name}: expected a list of 1-D integer arrays; wrap one stream as [stream]")
        try:
            items = list(sequences)
        except TypeError:
            raise BpttError(
                f"{name}: expected a list of 1-D integer arrays, got {type(sequences).__name__}"
            ) from None
        return [self._check_symbols(f"{name}[{i}]", q) for i, q in enumerate(items)]


def bits_per_char(model, sequences, start=0) -> float:
    """Mean negative log2 probability of the symbols ``model`` scores in ``sequences``.

    Each sequence is scored on its own from position ``start`` on (``model.log_probs(seq, start)``).

    Returns:
        -Σ log2 p / (number of scored symbols), over all sequences
    """
    if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
        raise BpttError("sequences: expected a list of 1-D integer arrays; wrap one stream as [stream]")
    total, scored = 0.0, 0
    for seq in sequences:
        lp = model.log_probs(seq, start)
        total -= float(lp.sum())
        scored += lp.size
    if scored == 0:
        raise BpttError("sequences: no symbols to score")
    return total / (scored * np.log(2.0))


def text_sequences(text, alphabet, unit):
    """A text as the n-gram model reads it, and where scoring starts: the stream as one sequence
    (every character scored), or each line as "\\n" + line + "\\n" (the start symbol read, not scored).

    Returns: (list of 1-D int arrays, start).
    """
    if unit == "stream":
        return [alphabet.encode(text)], 0
    return [alphabet.encode("\n" + line + "\n") for line in text.split("\n") if line], 1


def baseline_table(train, evaluate, alphabet, unit="stream", orders=range(2, 8), discount=0.75):
    """Bits per character of interpolated Kneser–Ney models of each order, fitted on the text ``train``
    and scored on ``evaluate`` (strings; the alphabet maps unseen characters to its unknown symbol).

    Returns: [(order, bpc)].
    """
    fit_on, _ = text_sequences(train, alphabet, unit)
    scored, start = text_sequences(evaluate, alphabet, unit)
    return [
        (n, bits_per_char(KneserNey(n, len(alphabet), discount).fit(fit_on), scored, start)) for n in orders
    ]


class OnlineKneserNey:
    """The same interpolated Kneser–Ney as `KneserNey`, kept in dictionaries so that it can go on counting:
    ``observe`` adds a sequence's k-grams ending at some positions, ``log_prob`` scores one symbol.

    Per order k: the k-grams seen (``seen``, for continuation counts), each k-gram's count (raw at k = n,
    N1+(·g) below), and per history its total and its number of non-zero counts, updated as `fit`
    would compute them from all the sequences observed. A k-gram is an int, Σ_j s_j V^j over its symbols.
    """

    def __init__(self, order, vocab_size, discount=0.75):
        KneserNey(order, vocab_size, discount)  # the same checks
        self.order, self.V, self.D = order, vocab_size, discount
        n = order + 1
        self.seen = [set() for _ in range(n)]
        self.count = [{} for _ in range(n)]
        self.total = [{} for _ in range(n)]
        self.types = [{} for _ in range(n)]

    def _suffixes(self, seq, i, n):
        """The k-grams ending at i for k = 0 … n as ints (k = 0: the empty one, 0)."""
        keys, key, scale = [0], 0, 1
        for j in range(i, i - n, -1):
            key += int(seq[j]) * scale  # the earlier symbol is the more significant digit
            scale *= self.V
            keys.append(key)
        return keys

    def _add(self, k, g):
        h = g // self.V  # the history: the k-gram without its last symbol
        c = self.count[k].get(g, 0)
        self.count[k][g] = c + 1
        self.total[k][h] = self.total[k].get(h, 0) + 1
        if c == 0:
            self.types[k][h] = self.types[k].get(h, 0) + 1

    def observe(self, seq, start=0, stop=None):
        """Count the k-grams of ``seq`` (1-D ints) ending at positions start … stop − 1, every order,
        each with the history ``seq`` holds before it (the positions before ``start`` already counted)."""
        n = self.order
        for i in range(start, len(seq) if stop is None else stop):
            grams = self._suffixes(seq, i, min(n, i + 1))
            new_above = False  # is the (k+1)-gram ending at i new? (its suffix gains a left extension)
            for k in range(len(grams) - 1, 0, -1):
                g = grams[k]
                if k == n:
                    self._add(k, g)
                elif new_above:
                    self._add(k, g)
                new_above = g not in self.seen[k]
                if new_above:
                    self.seen[k].add(g)

    def log_prob(self, seq, i):
        """The natural log of P(seq[i] | seq[max(0, i − n + 1):i])."""
        p, w, D = 1.0 / self.V, int(seq[i]), self.D
        histories = self._suffixes(seq, i - 1, min(self.order - 1, i))
        for k in range(1, len(histories) + 1):
            h = histories[k - 1]
            total = self.total[k].get(h, 0)
            if total:
                c = self.count[k].get(h * self.V + w, 0)
                p = (max(c - D, 0.0) + D * self.types[k][h] * p) / total
        return math.log(p)

    def score_and_count(self, pieces, steps, start=0):
        """Score ``pieces`` (1-D int arrays) side by side, ``steps`` symbols of each at a time, counting
        each chunk once every piece's is scored (each piece's history its own), from position ``start``.

        Returns: (−Σ ln p, symbols scored).
        """
        total, scored = 0.0, 0
        for t in range(0, max(len(p) for p in pieces), steps):
            for p in pieces:
                for i in range(max(t, start), min(len(p), t + steps)):
                    total -= self.log_prob(p, i)
                    scored += 1
            for p in pieces:
                self.observe(p, t, min(len(p), t + steps))
        return total, scored


def adaptive_bits_per_char(train, pieces, order, steps, discount=0.75, vocab_size=None, start=0):
    """Bits per character of a Kneser–Ney model that, like dynamic evaluation (`model.evaluate_dynamic`),
    goes on counting the text it scores: ``pieces`` (1-D int arrays) are scored side by side, ``steps``
    symbols of each at a time, each chunk by the counts of ``train`` (a list of 1-D int arrays) and of
    every chunk scored before it; each piece's history is its own (`OnlineKneserNey.score_and_count`).
    ``pieces`` may also be a list of such lists (groups), scored one group after the other.

    Returns: -Σ log2 p / (number of symbols scored): every symbol of every piece from position ``start``
    on (1: each piece's first symbol is read, not scored, as `text_sequences` does for lines).
    """
    groups = pieces if pieces and isinstance(pieces[0], list) else [pieces]
    V = vocab_size or 1 + max(int(s.max()) for s in [*train, *(p for g in groups for p in g)] if len(s))
    model = OnlineKneserNey(order, V, discount)
    for seq in train:
        model.observe(seq)
    total, scored = 0.0, 0
    for group in groups:
        t, n = model.score_and_count(group, steps, start)
        total, scored = total + t, scored + n
    return total / (scored * math.log(2.0))
