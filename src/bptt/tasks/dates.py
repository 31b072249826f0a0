"""Date normalisation: dates written the many ways people write them → ISO "YYYY-MM-DD".

The data of an encoder–decoder task. The encoder reads the written date character by character
("Thursday, May 3, 1979", "03.05.79", "the 3rd of may '79"); the decoder writes "1979-05-03".
Every example is drawn from a NumPy generator: nothing is read from or written to files.

Dates. Every day from 1950-01-01 to 2049-12-31 (36,525 days), so that a two-digit year is
unambiguous: yy ≥ 50 is 19yy, yy < 50 is 20yy ('79 → 1979, 09 → 2009). Names are English and fixed
(never the locale's); weekdays are the proleptic Gregorian calendar's, as in ``datetime``.

Formats. ``FORMATS`` maps a short stable name to a template over the fields of one date:
    d 3, dd 03, dth 3rd, m 5, mm 05, yy 79, yyyy 1979,
    Month May / month may / MONTH MAY (full names), Mon Sep / mon sep / MON SEP (three letters),
    Ap the AP style's "Sept." (Jan. Feb. Aug. Sept. Oct. Nov. Dec.; March … July written out),
    Weekday Thursday, Wkd Thu.
Each template fixes the order of day, month and year, so each format is unambiguous by itself,
and the separators keep them apart: slashes are month/day/year (US) unless the year comes first
with four digits, dots are day.month.year (European), dashes put the year first or spell the month.
No text is written by two formats for two different dates.

Held-out formats. ``HELD_OUT_FORMATS`` are never drawn for training (``TRAIN_FORMATS`` are the
rest); each is made only of pieces that training formats show ("the 3rd of", lowercase month
names, "'79", "-may-", capitals, "1979/…") in a combination they do not, to measure how well a
model generalises to a way of writing it has never seen.

Splits. Every date belongs to exactly one of "train", "valid", "test" (about 90/5/5), decided by a
hash of its ordinal alone (``date_split``): a date held out is never seen in training, in any
format. The split is part of the task's definition: changing the hash changes every result.
The split (which dates) and the stream (``dates_rng(seed, stream)``, which random draws) are
separate: draw the validation set with ``draw_dates(dates_rng(seed, "valid"), n, "valid")``.

Vocabularies and ids (constants, so that a model file can store them):
    input   0 padding, 1 unknown character, 2 + i the character INPUT_CHARS[i]   (N_INPUT ids)
    output  OUTPUT_VOCAB = ("<end>", "0", …, "9", "-"): 0 <end>, 1 + i OUTPUT_CHARS[i]  (N_OUTPUT)
            START = N_OUTPUT, "<start>", only ever the decoder's first input      (N_DECODER_INPUT)
The encoder reads ids (Tx, B), time-major, padded with 0 after each text's length. The decoder
reads Y_in (Ty, B) = [<start>, y1 … y10] and is trained to write Y_out (Ty, B) = [y1 … y10, <end>],
Ty = 11: a softmax over the N_OUTPUT = 12 output ids at every step.
"""

from __future__ import annotations

import datetime
from functools import cache

import numpy as np

from ..errors import BpttError, check_choice

FIRST, LAST = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)  # the range two-digit years fix
SPLITS = ("train", "valid", "test")  # which dates (``date_split``)
STREAMS = ("train", "valid", "test")  # which random draws (``dates_rng``): independent streams of a seed
MAX_INPUT_LEN = 40  # the longest written date accepted (the longest format writes 29 characters)

# ------------------------------------------------------------------------------------------ the formats

MONTHS = ("January February March April May June July August September October November December").split()
MONS = tuple(m[:3] for m in MONTHS)  # Jan … Dec: Sep, never Sept
AP_MONTHS = ("Jan. Feb. March April May June July Aug. Sept. Oct. Nov. Dec.").split()  # AP style
WEEKDAYS = ("Monday Tuesday Wednesday Thursday Friday Saturday Sunday").split()  # date.weekday() order
WKDS = tuple(w[:3] for w in WEEKDAYS)  # Mon … Sun

FORMATS = {
    # the day first, the month in words
    "d_month_yyyy": "{d} {Month} {yyyy}",  # 3 May 1979
    "dd_month_yyyy": "{dd} {Month} {yyyy}",  # 03 May 1979
    "d_month_yyyy_upper": "{d} {MONTH} {yyyy}",  # 3 MAY 1979
    "d_mon_yyyy": "{d} {Mon} {yyyy}",  # 3 Sep 1979
    "d_mon_yy_lower": "{d} {mon} {yy}",  # 3 sep 79
    "d_mon_yyyy_dash": "{d}-{Mon}-{yyyy}",  # 3-Sep-1979
    "dd_mon_yy_dash_lower": "{dd}-{mon}-{yy}",  # 03-sep-79
    "ddmonyyyy_upper": "{dd}{MON}{yyyy}",  # 03SEP1979 (military, airline)
    "dth_month_yyyy": "{dth} {Month} {yyyy}",  # 3rd May 1979
    "the_dth_of_month_yyyy": "the {dth} of {Month} {yyyy}",  # the 3rd of May 1979
    "the_dth_of_month_yy_lower": "the {dth} of {month} '{yy}",  # the 3rd of may '79
    "weekday_d_month_yyyy": "{Weekday}, {d} {Month} {yyyy}",  # Thursday, 3 May 1979
    "wkd_d_mon_yyyy": "{Wkd}, {d} {Mon} {yyyy}",  # Thu, 3 May 1979 (e-mail headers)
    # the month first, in words
    "month_d_yyyy": "{Month} {d}, {yyyy}",  # May 3, 1979
    "month_d_yyyy_lower": "{month} {d}, {yyyy}",  # may 3, 1979
    "month_d_yyyy_upper": "{MONTH} {d} {yyyy}",  # MAY 3 1979
    "mon_d_yyyy": "{Mon} {d}, {yyyy}",  # Sep 3, 1979
    "ap_mon_d_yyyy": "{Ap} {d}, {yyyy}",  # Sept. 3, 1979
    "month_dth_yyyy": "{Month} {dth}, {yyyy}",  # May 3rd, 1979
    "month_d_yy_apos": "{Month} {d}, '{yy}",  # May 3, '79
    "weekday_month_d_yyyy": "{Weekday}, {Month} {d}, {yyyy}",  # Thursday, May 3, 1979
    "wkd_mon_d_yyyy": "{Wkd} {Mon} {d} {yyyy}",  # Thu May 3 1979 (ctime without the time)
    # numbers: slashes month/day/year (US), dots day.month.year (European), the year first
    "us_m_d_yy": "{m}/{d}/{yy}",  # 5/3/79
    "us_m_d_yyyy": "{m}/{d}/{yyyy}",  # 5/3/1979
    "us_mm_dd_yyyy": "{mm}/{dd}/{yyyy}",  # 05/03/1979
    "eu_d_m_yyyy": "{d}.{m}.{yyyy}",  # 3.5.1979
    "eu_dd_mm_yy": "{dd}.{mm}.{yy}",  # 03.05.79
    "eu_dd_mm_yyyy": "{dd}.{mm}.{yyyy}",  # 03.05.1979
    "yyyy_m_d": "{yyyy}-{m}-{d}",  # 1979-5-3
    "yyyy_mm_dd": "{yyyy}-{mm}-{dd}",  # 1979-05-03 (ISO itself: the answer is a copy)
    "yyyy_mm_dd_slash": "{yyyy}/{mm}/{dd}",  # 1979/05/03
    "yyyymmdd": "{yyyy}{mm}{dd}",  # 19790503 (ISO basic)
}
HELD_OUT_FORMATS = (
    "the_dth_of_month_yy_lower",  # "the 3rd of" + lowercase month + '79, each seen apart
    "dd_mon_yy_dash_lower",  # 03 + -mon- + lowercase sep + a closing 79
    "month_d_yyyy_upper",  # capitals + "Thu May 3 1979" without its weekday
    "yyyy_mm_dd_slash",  # the ISO order with the US slashes
)
TRAIN_FORMATS = tuple(name for name in FORMATS if name not in HELD_OUT_FORMATS)


def _ordinal_suffix(day):
    """1st 2nd 3rd 4th … 11th 12th 13th … 21st 22nd 23rd … 31st."""
    if 11 <= day <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _fields(date):
    """The template fields of ``date`` (module docstring)."""
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return {
        "d": str(date.day),
        "dd": f"{date.day:02d}",
        "dth": f"{date.day}{_ordinal_suffix(date.day)}",
        "m": str(date.month),
        "mm": f"{date.month:02d}",
        "yy": f"{date.year % 100:02d}",
        "yyyy": str(date.year),
        "Month": month,
        "month": month.lower(),
        "MONTH": month.upper(),
        "Mon": MONS[date.month - 1],
        "mon": MONS[date.month - 1].lower(),
        "MON": MONS[date.month - 1].upper(),
        "Ap": AP_MONTHS[date.month - 1],
        "Weekday": weekday,
        "Wkd": WKDS[date.weekday()],
    }


def _check_date(date):
    if not isinstance(date, datetime.date):
        raise BpttError(f"date: expected a datetime.date, got {type(date).__name__}")
    if not FIRST <= date <= LAST:
        raise BpttError(f"date: {date.isoformat()} is outside {FIRST.isoformat()} … {LAST.isoformat()}")
    return date


def write_date(date, name):
    """``date`` written in the format called ``name``."""
    check_choice("format", name, tuple(FORMATS))
    return FORMATS[name].format(**_fields(_check_date(date)))


def written_forms(date):
    """{format name: ``date`` written in it} for every format, in the order of ``FORMATS``."""
    fields = _fields(_check_date(date))
    return {name: template.format(**fields) for name, template in FORMATS.items()}


def to_iso(date):
    """The target: "YYYY-MM-DD"."""
    return _check_date(date).isoformat()


# ------------------------------------------------------------------------------------------- the splits

_MASK = (1 << 64) - 1


def _bucket(ordinal):
    """0 … 99 from the date's ordinal alone: the SplitMix64 finaliser, so neighbouring days scatter."""
    z = (ordinal * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) % 100


def _split_of(ordinal):
    bucket = _bucket(ordinal)
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def date_split(date):
    """The split ``date`` belongs to: "train" (~90%), "valid" (~5%) or "test" (~5%), fixed forever."""
    return _split_of(_check_date(date).toordinal())


@cache
def _split_ordinals():
    """{split: (n,) int64 ordinals of its dates, in order}; computed once (36,525 hashes)."""
    ordinals = np.arange(FIRST.toordinal(), LAST.toordinal() + 1)
    splits = np.array([_split_of(int(o)) for o in ordinals])
    return {s: ordinals[splits == s] for s in SPLITS}


def split_dates(split):
    """Every date of ``split``, in order. Returns: a list of datetime.date."""
    check_choice("split", split, SPLITS)
    return [datetime.date.fromordinal(int(o)) for o in _split_ordinals()[split]]


# ------------------------------------------------------------------------------------------ the draws


def dates_rng(seed, stream):
    """The generator of one of a seed's independent streams: "train", "valid" or "test"."""
    check_choice("stream", stream, STREAMS)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BpttError(f"seed: expected a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), STREAMS.index(stream)])


def draw_dates(rng, n, split, formats=None):
    """n examples: dates uniform over ``split``'s, formats uniform over ``formats`` (TRAIN_FORMATS).

    Returns: a list of n (written text, ISO target, format name).
    """
    if not isinstance(rng, np.random.Generator):
        raise BpttError(
            f"rng: expected a numpy Generator (dates_rng(seed, stream)), got {type(rng).__name__}"
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise BpttError(f"n: expected a non-negative integer, got {n!r}")
    check_choice("split", split, SPLITS)
    formats = TRAIN_FORMATS if formats is None else formats
    if isinstance(formats, str):  # a lone name would be read as its letters
        raise BpttError(f"formats: expected a list of format names, got the string {formats!r}")
    formats = tuple(formats)
    if not formats:
        raise BpttError("formats: expected at least one format name, got none")
    for name in formats:
        check_choice("format", name, tuple(FORMATS))
    ordinals = _split_ordinals()[split]
    which = ordinals[rng.integers(0, len(ordinals), size=n)]  # (n,) dates, uniform over the split
    how = rng.integers(0, len(formats), size=n)  # (n,) formats, uniform
    out = []
    for ordinal, f in zip(which.tolist(), how.tolist()):
        date = datetime.date.fromordinal(ordinal)
        out.append((FORMATS[formats[f]].format(**_fields(date)), date.isoformat(), formats[f]))
    return out


# ------------------------------------------------------------------------------------------- the ids

# every character a format can write, and nothing else (a test checks both ways): punctuation,
# digits, the capitals and small letters of the month and weekday names, "the", "of", "st nd rd th"
INPUT_CHARS = " ',-./0123456789ABCDEFGHIJLMNOPRSTUVWYabcdefghijlmnoprstuvy"
PAD, UNKNOWN = 0, 1  # input ids; INPUT_CHARS[i] is 2 + i
N_INPUT = 2 + len(INPUT_CHARS)
_INPUT_ID = {c: 2 + i for i, c in enumerate(INPUT_CHARS)}

OUTPUT_CHARS = "0123456789-"
OUTPUT_VOCAB = ("<end>", *OUTPUT_CHARS)  # the decoder's softmax classes: 0 <end>, OUTPUT_CHARS[i] is 1 + i
END = 0
N_OUTPUT = len(OUTPUT_VOCAB)  # 12
START = N_OUTPUT  # "<start>": the decoder's first input, never an output
N_DECODER_INPUT = N_OUTPUT + 1  # 13: the decoder reads the output ids and <start>
ISO_LEN = 10  # "YYYY-MM-DD"
TY = ISO_LEN + 1  # decoder steps: ten characters, then <end>
_OUTPUT_ID = {c: 1 + i for i, c in enumerate(OUTPUT_CHARS)}


def check_text(text):
    """Refuse a text that is not a string, is empty or is longer than MAX_INPUT_LEN (one line)."""
    if not isinstance(text, str):
        raise BpttError(f"expected the date as a string, got {type(text).__name__}")
    if not text:
        raise BpttError("empty date")
    if len(text) > MAX_INPUT_LEN:
        raise BpttError(
            f"date too long: {len(text)} characters, at most {MAX_INPUT_LEN} ({text[:MAX_INPUT_LEN]!r}…)"
        )
    return text


def check_chars(text):
    """`check_text`, and refuse a text with characters no date format uses (each would read as UNKNOWN)."""
    odd = sorted(set(check_text(text)) - set(INPUT_CHARS))
    if odd:
        raise BpttError(f"{''.join(odd)!r}: no date format uses these characters")
    return text


def encode_input(texts):
    """The encoder's ids: characters outside INPUT_CHARS become UNKNOWN, short texts are padded.

    Shapes: ids (Tx, B) with Tx the longest text's length, lengths (B,).
    Returns: ids int64 (time-major, PAD after each text's end), lengths int64.
    """
    if isinstance(texts, str):  # a lone text would be read as a batch of characters
        raise BpttError(f"texts: expected a list of strings, got the string {texts!r}")
    texts = [check_text(t) for t in texts]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)  # (B,)
    ids = np.full((int(lengths.max(initial=0)), len(texts)), PAD, dtype=np.int64)  # (Tx, B)
    for b, text in enumerate(texts):
        ids[: len(text), b] = [_INPUT_ID.get(c, UNKNOWN) for c in text]
    return ids, lengths


def encode_output(isos):
    """The decoder's inputs and targets for ISO dates "YYYY-MM-DD".

    Shapes: Y_in (Ty, B) = [START, y1 … y10], Y_out (Ty, B) = [y1 … y10, END], Ty = 11.
    Returns: Y_in int64, Y_out int64.
    """
    if isinstance(isos, str):
        raise BpttError(f"isos: expected a list of strings, got the string {isos!r}")
    isos = list(isos)
    Y_out = np.full((TY, len(isos)), END, dtype=np.int64)  # (Ty, B); the last row stays <end>
    for b, iso in enumerate(isos):
        try:
            ok = isinstance(iso, str) and len(iso) == ISO_LEN and datetime.date.fromisoformat(iso)
        except ValueError:
            ok = False
        if not ok:
            raise BpttError(f"isos[{b}]: expected a date written YYYY-MM-DD, got {iso!r}")
        Y_out[:ISO_LEN, b] = [_OUTPUT_ID[c] for c in iso]
    Y_in = np.empty_like(Y_out)  # (Ty, B): the targets shifted one step later, behind <start>
    Y_in[0] = START
    Y_in[1:] = Y_out[:-1]
    return Y_in, Y_out


def decode_output(ids):
    """The text of output ids (B = 1), up to the first END. Shapes: ids (Ty,). Returns: str."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise BpttError(f"ids: expected a 1-dimensional array of integer ids, got shape {ids.shape}")
    out = []
    for i in ids.tolist():
        if i == END:
            break
        if not 0 < i < N_OUTPUT:
            raise BpttError(f"ids: {i} is not an output id (0 … {N_OUTPUT - 1})")
        out.append(OUTPUT_CHARS[i - 1])
    return "".join(out)
