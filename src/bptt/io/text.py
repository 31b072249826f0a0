"""Raw text to the tokens a CoNLL-2003 model was trained on, and back.

CoNLL-2003 is tokenized in the Penn Treebank style, and a tagger does best on text cut the same way.
``tokenize`` does that, and every token carries its character offsets into the text, so what the
tagger finds can be pointed at in the original string. The rules, each checked against eng.train:

    words            "one-day", "6-4", "1/2", "S&P", "O'Brien", "reuters.com", "U.S.-led" stay whole:
                     letters and digits joined by - / & @ ' . (and by , : between digits)
    numbers          "1,000", "3.5", "+0.05", ".496", "12:30", "1996-08-28" stay whole; "5%" is "5" "%"
    currencies       "$5" is "$" "5"; "US$", "C$", "HK$" are one token
    clitics          split off: "'s" "n't" "'re" "'ll" "'ve" "'m" "'d" (any case);
                     "won't" is "wo" "n't", "can't" is "ca" "n't", "don't" is "do" "n't" (PTB)
    periods          split off a word unless it is an abbreviation: a single capital initial ("J."),
                     letters and dots ("U.S.", "e.g.", "a.m."), a word of ``ABBREVIATIONS``, or one
                     the caller gives (a model's vocabulary: ``vocabulary_abbreviations``);
                     "1." first on a line is a list number and stays whole
    sentence end     the period is split off whatever the word: "in Washington, D.C." ends in
                     "D.C" "." (CoNLL writes "the U.S ." and never "U.S. .")
    punctuation      one token per mark: , ; : ( ) [ ] " ' ! ? %; runs of one mark stay together:
                     "--", "...", "**"; URLs stay whole (without a final period or bracket)

A token's ``text`` is what the model reads: typographic quotes and apostrophes become ' and ",
dashes - and --, the ellipsis "...". Otherwise ``text == line[start:end]`` (offsets end exclusive),
also for the PTB splits: "won't" at i gives "wo" (i, i+2) and "n't" (i+2, i+5).

``split_sentences`` cuts a text into sentences (a tagger reads one at a time) by one rule:

    a sentence ends after ".", "!" or "?" (with the closing quotes and brackets right after them)
    when whitespace and a word that starts with a capital letter, a digit, or an opening quote or
    bracket follow; after an abbreviation only when the next word is a common sentence start
    (``SENTENCE_STARTS``: "The", "He", "But", ...) and the abbreviation is not a title (``TITLES``:
    "Mr.", "Dr.", ... come before names). A line break always ends a sentence; "..." never does;
    a quote left open at the end of a line stays with the sentence before it.

So "Mr. Smith" and "the U.S. Senate" stay in one sentence, "in the U.S. The talks" is two, and "in
the U.S. Officials said" stays one: the last is the price of never breaking "Mr. Smith".

``detokenize`` undoes the Penn Treebank spacing of CoNLL tokens ("U.S. Senate 's" → "U.S.
Senate's", "do n't" → "don't", no space before , . ; : ) and closing quotes); tokenizing its output
gives the same tokens back for 99.45% of the 3,250 sentences of eng.testa (tests/test_text.py).
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Token(NamedTuple):
    """A token of a text and where it is."""

    text: str  # what the model reads (typographic quotes, dashes and the ellipsis normalised)
    start: int  # offset of its first character in the text
    end: int  # offset just after its last character (end exclusive)


class Segmented(NamedTuple):
    """A text cut into tokens and sentences."""

    text: str  # the text itself: offsets point into it
    tokens: list  # every Token, in order
    sentences: list  # (first token, end token) of each sentence: tokens[first:end]


# abbreviations that keep their period, lower case without it (a model adds those of its vocabulary)
TITLES = frozenset(
    "mr mrs ms dr prof rev fr gen col lt maj sgt capt cmdr adm gov sen rep hon messrs mme mlle".split()
)
ABBREVIATIONS = frozenset(
    (
        *TITLES,
        *"jr sr inc corp co cos ltd bros st mt ft ave blvd rd".split(),  # names, firms, places
        *"jan feb mar apr jun jul aug sep sept oct nov dec".split(),  # months ("May." is a word)
        # US states as Reuters writes them (the ones that are not also English words)
        *"ala ariz ark calif colo conn fla kan ky md mich minn mont neb nev okla tenn tex".split(),
        *"va vt wis wyo".split(),
        *"vs etc al approx dept est vol pp fig univ assn".split(),
    )
)
# capitalised words that begin a sentence far more often than they follow an abbreviation in one
SENTENCE_STARTS = frozenset(
    """The A An He She It They We I You This That These Those There Their His Her Its Our My But And
    Or So Yet If When While After Before As In On At For From By With However Meanwhile Also Then Now
    Some Many Most All Both Each What Who Why How Where""".split()
)
CLITICS = ("'s", "n't", "'re", "'ll", "'ve", "'m", "'d")

_W = r"[\w\u0300-\u036f]"  # a word character (with combining accents)
_TOKEN = re.compile(
    rf"""
      (?P<url>(?:https?://|ftp://|www\.)\S+?)(?=[.,;:!?'"”’)\]]*(?:\s|$))  # without trailing marks
    | (?P<money>[A-Z]{{1,3}}\$)                                         # US$ C$ HK$ ($ alone: a mark)
    | (?P<word>(?:[+.](?=\d))?{_W}+                                     # +0.05 .496: a sign, a point
        (?:(?:[-/&@]|['’](?={_W})|\.(?={_W})|\.-|(?<=\d)[,:](?=\d)){_W}+)*  # inner joiners
        (?:\.(?![.\w]))?)                                               # a period: decided later
    | (?P<clitic>(?<=\S)['’](?i:s|re|ll|ve|m|d)(?!\w))                 # U.S.'s
    | (?P<mark>\.{{2,}}|-{{2,}}|(?P<rep>[*=!?#~_])(?P=rep)+|\S)         # ... -- ** or one mark
    """,
    re.VERBOSE,
)
_NOT_NOT = re.compile(r"(?i)^(.*[^\W\d_])(n['’]t)$")  # don't → do n't, won't → wo n't
_CLITIC = re.compile(r"(?i)^(.+)(['’](?:s|re|ll|ve|m|d))$")  # greedy: O'Neill's → O'Neill 's
_INITIALS = re.compile(r"^(?:[^\W\d_]\.){2,}$")  # U.S. e.g. a.m. F.A.I.
_LIST_NUMBER = re.compile(r"^\d{1,3}\.$")
_FORMS = str.maketrans(
    {"‘": "'", "’": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"',
     "–": "-", "—": "--", "―": "--", "…": "..."}
)  # fmt: skip
_OPENING = frozenset("\"'([{“‘«")
_CLOSING = frozenset("\"')]}”’»")


def vocabulary_abbreviations(words):
    """The abbreviations a vocabulary knows: its words that end in "." and have a letter before it,
    made of letters, dots, hyphens and apostrophes ("u.s.", "corp.", "vs."; not "...", not "1.").

    Returns: frozenset of them, lower case, without the final period (as ``ABBREVIATIONS``).
    """
    out = set()
    for w in words:
        if len(w) > 1 and w.endswith(".") and not w.endswith("..") and any(c.isalpha() for c in w):
            if all(c.isalpha() or c in ".-'" for c in w):
                out.add(w[:-1].lower())
    return frozenset(out)


def _is_abbreviation(word, abbreviations):
    """Does ``word`` (ending in ".") keep its period?"""
    stem = word[:-1]
    if len(stem) == 1 and stem.isalpha() and stem.isupper():  # an initial: J. K. Rowling
        return True
    return bool(_INITIALS.match(word)) or stem.lower() in abbreviations


def _pieces(m, text, abbreviations, line_start):
    """The tokens of one regex match: a word loses its period or clitic where it should."""
    start, end = m.span()
    if m.lastgroup != "word":
        return [(start, end)]
    word = m.group()
    out = []
    if word.endswith(".") and len(word) > 1:
        keep = _is_abbreviation(word, abbreviations) or (line_start and _LIST_NUMBER.match(word))
        if keep:
            return [(start, end)]
        out.append((end - 1, end))
        end -= 1
        word = word[:-1]
    split = _NOT_NOT.match(word) or _CLITIC.match(word)
    if split and split.group(1):
        cut = start + len(split.group(1))
        return [(start, cut), (cut, end), *out]
    return [(start, end), *out]


def _raw_tokens(text, abbreviations):
    """(start, end) of every token, and the lines: (first token, end token) of each line."""
    spans, lines = [], []
    pos = first = 0
    for line in text.split("\n"):
        line_end = pos + len(line)
        line_start = True
        for m in _TOKEN.finditer(text, pos, line_end):
            spans.extend(_pieces(m, text, abbreviations, line_start))
            line_start = False
        lines.append((first, len(spans)))
        first = len(spans)
        pos = line_end + 1
    return spans, lines


def _sentence_ends(text, spans, first, end):
    """Where the sentences of one line end: token indices (exclusive), the last one ``end``."""
    ends = []
    i = first
    while i < end - 1:
        s, e = spans[i]
        word = text[s:e]
        mark = word == "." or set(word) <= {"!", "?"}
        if mark or (word.endswith(".") and any(c.isalpha() for c in word)):
            j = i + 1
            while j < end and spans[j][0] == spans[j - 1][1] and text[spans[j][0] : spans[j][1]] in _CLOSING:
                j += 1  # closing quotes and brackets right after the mark belong to its sentence
            if j < end and spans[j][0] > spans[j - 1][1]:  # whitespace, then the next word
                nxt = text[spans[j][0] : spans[j][1]]
                if mark:
                    starts = nxt[0].isupper() or nxt[0].isdigit() or nxt in _OPENING
                else:  # an abbreviation: only before a common sentence start, and never a title
                    starts = nxt in SENTENCE_STARTS and word[:-1].lower() not in TITLES
                if starts:
                    ends.append(j)
            i = j
        else:
            i += 1
    if ends and all(text[s:e] in _OPENING for s, e in spans[ends[-1] : end]):
        ends.pop()  # a quote left open at the end of a line stays with the sentence before it
    ends.append(end)
    return ends


def segment(text, abbreviations=None):
    """Cut a text into tokens and sentences (see the module docstring for the rules).

    abbreviations: words that keep their period, lower case without it (default ``ABBREVIATIONS``;
        a model's are ``ABBREVIATIONS | vocabulary_abbreviations(its words)``).
    Returns: Segmented(text, tokens, sentences); an empty line has no sentence.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {type(text).__name__}")
    abbreviations = ABBREVIATIONS if abbreviations is None else abbreviations
    spans, lines = _raw_tokens(text, abbreviations)
    tokens, sentences = [], []
    for first, end in lines:
        begin = first
        for stop in _sentence_ends(text, spans, first, end) if end > first else ():
            part = spans[begin:stop]
            last = len(part) - 1
            while last > 0 and text[part[last][0] : part[last][1]] in _CLOSING:
                last -= 1  # the sentence's last word, before its closing quotes and brackets
            s, e = part[last]
            if e - s > 1 and text[e - 1] == "." and text[e - 2] != ".":  # an abbreviation ends it
                part[last : last + 1] = [(s, e - 1), (e - 1, e)]
            sentences.append((len(tokens), len(tokens) + len(part)))
            tokens.extend(Token(text[s:e].translate(_FORMS), s, e) for s, e in part)
            begin = stop
    return Segmented(text, tokens, sentences)


def tokenize(text, abbreviations=None):
    """Split raw text into tokens as CoNLL-2003 writes them: "won't." → wo, n't, ".".

    abbreviations: see `segment`.
    Returns: list of Token(text, start, end), offsets into ``text``.
    """
    return segment(text, abbreviations).tokens


def split_sentences(text, abbreviations=None):
    """Split raw text into sentences of tokens (a line break always ends one).

    Returns: list of lists of Token, offsets into ``text``.
    """
    seg = segment(text, abbreviations)
    return [seg.tokens[a:b] for a, b in seg.sentences]


def pretokenized(words, text=None, offsets=None):
    """Words already tokenized (a CoNLL sentence) as one sentence: offsets into the words joined by
    single spaces, or into ``text`` at ``offsets`` ((start, end) per word) when given.

    Returns: Segmented.
    """
    words = list(words)
    if offsets is None:
        text = " ".join(words)
        offsets, pos = [], 0
        for w in words:
            offsets.append((pos, pos + len(w)))
            pos += len(w) + 1
    tokens = [Token(w, s, e) for w, (s, e) in zip(words, offsets)]
    return Segmented(text, tokens, [(0, len(tokens))] if tokens else [])


_ATTACH_LEFT = frozenset([",", ".", ";", ":", "!", "?", "%", ")", "]", "}", "..."])
_ATTACH_RIGHT = frozenset(["(", "[", "{", "$"])


def detokenize(words, offsets=False):
    """Undo Penn Treebank spacing: ["U.S.", "Senate", "'s", "view", "."] → "U.S. Senate's view.".

    No space before , . ; : ! ? % ) ] ... and the clitics, none after ( [ $ US$; straight double
    quotes alternate opening and closing; a ' after a word ending in s is a possessive ("Farmers'"),
    before a number an elision ("'96"), otherwise a quote like ".
    offsets: also return each word's (start, end) in the text.
    Returns: str, or (str, list of (start, end)).
    """
    if isinstance(words, (str, bytes)) or not hasattr(words, "__iter__"):
        raise TypeError(f"words: expected a list of words (strings), got {type(words).__name__}")
    words = list(words)
    if not all(isinstance(w, str) for w in words):
        raise TypeError("words: expected a list of words (strings), got a word that is not a string")
    parts, spans, pos = [], [], 0
    glue_next = False  # the previous word wants no space after it
    open_double = open_single = False
    for i, w in enumerate(words):
        prev = words[i - 1] if i else ""
        left = False  # no space before w
        right = False  # no space after w
        if w in _ATTACH_LEFT or w.lower() in CLITICS:
            left = True
        elif w.endswith("$") and len(w) <= 4:
            right = True
        elif w == '"':
            left, right = open_double, not open_double
            open_double = not open_double
        elif w == "'":
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if prev[-1:] in ("s", "S") and prev.isalpha() and not open_single:
                left = True  # Farmers'
            elif nxt[:1].isdigit():
                right = True  # '96
            else:
                left, right = open_single, not open_single
                open_single = not open_single
        elif w in _ATTACH_RIGHT:
            right = True
        if i and not (left or glue_next):
            parts.append(" ")
            pos += 1
        spans.append((pos, pos + len(w)))
        parts.append(w)
        pos += len(w)
        glue_next = right
    text = "".join(parts)
    return (text, spans) if offsets else text
