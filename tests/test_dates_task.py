"""The date-normalisation data: every format written out, the split, the draws, the ids, the errors.

The expected texts are written out by hand, not computed by the code under test; the weekdays are
checked against dates everybody knows and against a count of days that does not use ``datetime``.
"""

import datetime
import re
import string

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.tasks.dates import (
    END,
    FIRST,
    FORMATS,
    HELD_OUT_FORMATS,
    INPUT_CHARS,
    LAST,
    MAX_INPUT_LEN,
    N_DECODER_INPUT,
    N_INPUT,
    N_OUTPUT,
    OUTPUT_CHARS,
    OUTPUT_VOCAB,
    PAD,
    SPLITS,
    START,
    TRAIN_FORMATS,
    TY,
    UNKNOWN,
    WEEKDAYS,
    date_split,
    dates_rng,
    decode_output,
    draw_dates,
    encode_input,
    encode_output,
    split_dates,
    write_date,
    written_forms,
)

D = datetime.date
N_DAYS = 36_525  # 1950-01-01 … 2049-12-31: 100 × 365 days and 25 leap days (1952 … 2048)

# ------------------------------------------------------------------------------------------ the formats

MAY_3_1979 = {  # a Thursday
    "d_month_yyyy": "3 May 1979",
    "dd_month_yyyy": "03 May 1979",
    "d_month_yyyy_upper": "3 MAY 1979",
    "d_mon_yyyy": "3 May 1979",
    "d_mon_yy_lower": "3 may 79",
    "d_mon_yyyy_dash": "3-May-1979",
    "dd_mon_yy_dash_lower": "03-may-79",
    "ddmonyyyy_upper": "03MAY1979",
    "dth_month_yyyy": "3rd May 1979",
    "the_dth_of_month_yyyy": "the 3rd of May 1979",
    "the_dth_of_month_yy_lower": "the 3rd of may '79",
    "weekday_d_month_yyyy": "Thursday, 3 May 1979",
    "wkd_d_mon_yyyy": "Thu, 3 May 1979",
    "month_d_yyyy": "May 3, 1979",
    "month_d_yyyy_lower": "may 3, 1979",
    "month_d_yyyy_upper": "MAY 3 1979",
    "mon_d_yyyy": "May 3, 1979",
    "ap_mon_d_yyyy": "May 3, 1979",
    "month_dth_yyyy": "May 3rd, 1979",
    "month_d_yy_apos": "May 3, '79",
    "weekday_month_d_yyyy": "Thursday, May 3, 1979",
    "wkd_mon_d_yyyy": "Thu May 3 1979",
    "us_m_d_yy": "5/3/79",
    "us_m_d_yyyy": "5/3/1979",
    "us_mm_dd_yyyy": "05/03/1979",
    "eu_d_m_yyyy": "3.5.1979",
    "eu_dd_mm_yy": "03.05.79",
    "eu_dd_mm_yyyy": "03.05.1979",
    "yyyy_m_d": "1979-5-3",
    "yyyy_mm_dd": "1979-05-03",
    "yyyy_mm_dd_slash": "1979/05/03",
    "yyyymmdd": "19790503",
}
SEPT_12_2001 = {  # a Wednesday: the abbreviations differ from the names, two-digit day and month
    "d_month_yyyy": "12 September 2001",
    "dd_month_yyyy": "12 September 2001",
    "d_month_yyyy_upper": "12 SEPTEMBER 2001",
    "d_mon_yyyy": "12 Sep 2001",
    "d_mon_yy_lower": "12 sep 01",
    "d_mon_yyyy_dash": "12-Sep-2001",
    "dd_mon_yy_dash_lower": "12-sep-01",
    "ddmonyyyy_upper": "12SEP2001",
    "dth_month_yyyy": "12th September 2001",
    "the_dth_of_month_yyyy": "the 12th of September 2001",
    "the_dth_of_month_yy_lower": "the 12th of september '01",
    "weekday_d_month_yyyy": "Wednesday, 12 September 2001",
    "wkd_d_mon_yyyy": "Wed, 12 Sep 2001",
    "month_d_yyyy": "September 12, 2001",
    "month_d_yyyy_lower": "september 12, 2001",
    "month_d_yyyy_upper": "SEPTEMBER 12 2001",
    "mon_d_yyyy": "Sep 12, 2001",
    "ap_mon_d_yyyy": "Sept. 12, 2001",
    "month_dth_yyyy": "September 12th, 2001",
    "month_d_yy_apos": "September 12, '01",
    "weekday_month_d_yyyy": "Wednesday, September 12, 2001",
    "wkd_mon_d_yyyy": "Wed Sep 12 2001",
    "us_m_d_yy": "9/12/01",
    "us_m_d_yyyy": "9/12/2001",
    "us_mm_dd_yyyy": "09/12/2001",
    "eu_d_m_yyyy": "12.9.2001",
    "eu_dd_mm_yy": "12.09.01",
    "eu_dd_mm_yyyy": "12.09.2001",
    "yyyy_m_d": "2001-9-12",
    "yyyy_mm_dd": "2001-09-12",
    "yyyy_mm_dd_slash": "2001/09/12",
    "yyyymmdd": "20010912",
}


@pytest.mark.parametrize(("date", "expected"), [(D(1979, 5, 3), MAY_3_1979), (D(2001, 9, 12), SEPT_12_2001)])
def test_every_format_written_out(date, expected):
    assert written_forms(date) == expected  # every format, in order, nothing more
    assert list(written_forms(date)) == list(FORMATS)
    for name, text in expected.items():
        assert write_date(date, name) == text


@pytest.mark.parametrize(
    ("date", "name", "text"),
    [
        (D(2009, 5, 30), "us_m_d_yy", "5/30/09"),
        (D(2009, 5, 30), "eu_dd_mm_yy", "30.05.09"),
        (D(1950, 1, 1), "us_m_d_yy", "1/1/50"),  # the first day: yy 50 is 1950
        (D(2049, 12, 31), "us_m_d_yy", "12/31/49"),  # the last: yy 49 is 2049
        (D(2000, 2, 29), "month_d_yy_apos", "February 29, '00"),
        (D(1968, 3, 4), "ap_mon_d_yyyy", "March 4, 1968"),  # AP style spells out March … July
        (D(1968, 6, 4), "ap_mon_d_yyyy", "June 4, 1968"),
        (D(1968, 7, 4), "ap_mon_d_yyyy", "July 4, 1968"),
        (D(1968, 8, 4), "ap_mon_d_yyyy", "Aug. 4, 1968"),
        (D(1968, 1, 4), "ap_mon_d_yyyy", "Jan. 4, 1968"),
        (D(1968, 12, 4), "ap_mon_d_yyyy", "Dec. 4, 1968"),
        (D(1968, 6, 4), "d_mon_yyyy", "4 Jun 1968"),
        (D(1968, 7, 4), "wkd_mon_d_yyyy", "Thu Jul 4 1968"),
        (D(2049, 12, 31), "weekday_d_month_yyyy", "Friday, 31 December 2049"),
        (D(1950, 1, 1), "wkd_d_mon_yyyy", "Sun, 1 Jan 1950"),
    ],
)
def test_hand_picked_dates(date, name, text):
    assert write_date(date, name) == text


@pytest.mark.parametrize(
    ("date", "dth"),
    [
        (D(2001, 9, 1), "1st"),
        (D(2002, 9, 2), "2nd"),
        (D(2003, 9, 3), "3rd"),
        (D(2004, 9, 4), "4th"),
        (D(2010, 9, 10), "10th"),
        (D(2011, 9, 11), "11th"),
        (D(2012, 9, 12), "12th"),
        (D(2013, 9, 13), "13th"),
        (D(2020, 9, 20), "20th"),
        (D(2021, 9, 21), "21st"),
        (D(2022, 9, 22), "22nd"),
        (D(2023, 9, 23), "23rd"),
        (D(2024, 9, 24), "24th"),
        (D(2030, 9, 30), "30th"),
        (D(2031, 10, 31), "31st"),
    ],
)
def test_ordinal_days(date, dth):
    month, yyyy = ("October" if date.month == 10 else "September"), str(date.year)
    assert write_date(date, "dth_month_yyyy") == f"{dth} {month} {yyyy}"
    assert write_date(date, "month_dth_yyyy") == f"{month} {dth}, {yyyy}"
    assert write_date(date, "the_dth_of_month_yyyy") == f"the {dth} of {month} {yyyy}"


@pytest.mark.parametrize(
    ("date", "weekday"),
    [
        (D(1950, 1, 1), "Sunday"),
        (D(1963, 11, 22), "Friday"),
        (D(1969, 7, 20), "Sunday"),
        (D(1979, 5, 3), "Thursday"),
        (D(1989, 11, 9), "Thursday"),
        (D(2000, 1, 1), "Saturday"),
        (D(2001, 9, 11), "Tuesday"),
        (D(2049, 12, 31), "Friday"),
    ],
)
def test_weekdays_of_known_dates(date, weekday):
    assert write_date(date, "weekday_month_d_yyyy").split(",")[0] == weekday
    assert write_date(date, "weekday_d_month_yyyy").split(",")[0] == weekday
    assert write_date(date, "wkd_d_mon_yyyy").split(",")[0] == weekday[:3]
    assert write_date(date, "wkd_mon_d_yyyy").split()[0] == weekday[:3]


# ---------------------------------------------------------------- every date in every format, read back

MONTH_NAMES = "January February March April May June July August September October November December".split()
AP = "Jan. Feb. March April May June July Aug. Sept. Oct. Nov. Dec.".split()
DAYS_NAMES = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
PATTERNS = {  # an independent reader of each template field
    "d": r"[1-9]|[12]\d|3[01]",
    "dd": r"0[1-9]|[12]\d|3[01]",
    "dth": r"(?:[1-9]|[12]\d|3[01])(?:st|nd|rd|th)",
    "m": r"[1-9]|1[0-2]",
    "mm": r"0[1-9]|1[0-2]",
    "yy": r"\d\d",
    "yyyy": r"\d{4}",
    "Month": "|".join(MONTH_NAMES),
    "month": "|".join(m.lower() for m in MONTH_NAMES),
    "MONTH": "|".join(m.upper() for m in MONTH_NAMES),
    "Mon": "|".join(m[:3] for m in MONTH_NAMES),
    "mon": "|".join(m[:3].lower() for m in MONTH_NAMES),
    "MON": "|".join(m[:3].upper() for m in MONTH_NAMES),
    "Ap": "|".join(re.escape(a) for a in AP),
    "Weekday": "|".join(DAYS_NAMES),
    "Wkd": "|".join(w[:3] for w in DAYS_NAMES),
}


def read_back(template, text):
    """The date ``text`` says under ``template``, read without the code under test (None: no match)."""
    parts = string.Formatter().parse(template)
    regex = "".join(re.escape(lit) + (f"(?P<{f}>{PATTERNS[f]})" if f else "") for lit, f, _, _ in parts)
    match = re.fullmatch(regex, text)
    if match is None:
        return None
    g = match.groupdict()
    year = int(g["yyyy"]) if "yyyy" in g else int(g["yy"]) + (1900 if int(g["yy"]) >= 50 else 2000)
    lower = [m.lower() for m in MONTH_NAMES]
    for key, value in g.items():
        if key in ("m", "mm"):
            month = int(value)
        elif key in ("Month", "month", "MONTH"):
            month = lower.index(value.lower()) + 1
        elif key in ("Mon", "mon", "MON"):
            month = [m[:3] for m in lower].index(value.lower()) + 1
        elif key == "Ap":
            month = AP.index(value) + 1
    day = int(re.match(r"\d+", g.get("d") or g.get("dd") or g.get("dth")).group())
    date = D(year, month, day)
    for k, n in (("Weekday", None), ("Wkd", 3)):
        if k in g:
            assert g[k] == DAYS_NAMES[date.weekday()][:n], (text, "wrong weekday")
    return date


@pytest.fixture(scope="module")
def every_text():
    """{text: the dates written so, by any format} over every date and every format."""
    texts = {}
    for ordinal in range(FIRST.toordinal(), LAST.toordinal() + 1):
        date = D.fromordinal(ordinal)
        for text in written_forms(date).values():
            texts.setdefault(text, set()).add(date)
    return texts


def test_range():
    assert (FIRST, LAST) == (D(1950, 1, 1), D(2049, 12, 31))
    assert LAST.toordinal() - FIRST.toordinal() + 1 == N_DAYS


def test_input_chars_are_exactly_what_the_formats_write(every_text):
    written = set("".join(every_text))
    assert written == set(INPUT_CHARS)  # nothing unknown in training, and no id never trained
    assert len(set(INPUT_CHARS)) == len(INPUT_CHARS)
    assert max(map(len, every_text)) <= MAX_INPUT_LEN
    assert set(" ,./-'") <= written and "Sept." in "".join(every_text)


def test_no_text_names_two_dates(every_text):
    clashes = {text: dates for text, dates in every_text.items() if len(dates) > 1}
    assert not clashes


def test_every_format_reads_back():
    rng = np.random.default_rng(0)
    ordinals = list(rng.integers(FIRST.toordinal(), LAST.toordinal() + 1, size=1500))
    ordinals += [FIRST.toordinal(), LAST.toordinal(), D(2000, 2, 29).toordinal(), D(1999, 12, 31).toordinal()]
    for ordinal in ordinals:
        date = D.fromordinal(int(ordinal))
        for name, text in written_forms(date).items():
            assert read_back(FORMATS[name], text) == date, (name, text)


def test_weekdays_walk_one_day_at_a_time():
    """The weekday advances by one each day from Sunday 1950-01-01, counted without ``datetime``."""
    day = DAYS_NAMES.index("Sunday")
    for ordinal in range(FIRST.toordinal(), LAST.toordinal() + 1, 13):  # a stride coprime to 7
        date = D.fromordinal(ordinal)
        expected = DAYS_NAMES[(day + ordinal - FIRST.toordinal()) % 7]
        assert write_date(date, "weekday_month_d_yyyy").startswith(expected + ", ")
    assert list(WEEKDAYS) == DAYS_NAMES


def test_held_out_formats_are_made_of_training_pieces():
    assert len(HELD_OUT_FORMATS) == 4 and set(HELD_OUT_FORMATS) <= set(FORMATS)
    assert set(TRAIN_FORMATS) == set(FORMATS) - set(HELD_OUT_FORMATS)
    assert list(TRAIN_FORMATS) == [n for n in FORMATS if n in TRAIN_FORMATS]  # in FORMATS' order
    assert len(FORMATS) >= 25
    trained = [list(string.Formatter().parse(FORMATS[n])) for n in TRAIN_FORMATS]
    fields = {f for parts in trained for _, f, _, _ in parts if f}
    literals = "\n".join(FORMATS[n] for n in TRAIN_FORMATS)
    for name in HELD_OUT_FORMATS:
        for literal, field, _, _ in string.Formatter().parse(FORMATS[name]):
            assert field is None or field in fields, (name, field)
            assert literal in literals, (name, literal)


# -------------------------------------------------------------------------------------------- the splits

SPLIT_SIZES = {"train": 32_858, "valid": 1_836, "test": 1_831}  # part of the task's definition


def test_split_is_a_fixed_partition():
    dates = {s: split_dates(s) for s in SPLITS}
    assert {s: len(d) for s, d in dates.items()} == SPLIT_SIZES
    everything = [d for s in SPLITS for d in dates[s]]
    assert len(set(everything)) == N_DAYS == len(everything)  # each date in exactly one split
    assert min(everything) == FIRST and max(everything) == LAST
    for s in SPLITS:
        assert all(date_split(d) == s for d in dates[s][::7])
    assert abs(SPLIT_SIZES["train"] / N_DAYS - 0.90) < 0.01
    assert abs(SPLIT_SIZES["valid"] / N_DAYS - 0.05) < 0.005
    assert abs(SPLIT_SIZES["test"] / N_DAYS - 0.05) < 0.005


def test_split_of_pinned_dates():
    assert split_dates("valid")[:2] == [D(1950, 1, 17), D(1950, 3, 24)]
    assert split_dates("test")[:2] == [D(1950, 1, 30), D(1950, 3, 2)]
    assert date_split(D(2000, 1, 1)) == "test"
    assert date_split(D(1979, 5, 3)) == "train"
    assert [date_split(D(1979, 5, 3)) for _ in range(3)] == ["train"] * 3
    # the held-out dates are spread over the century, not clustered in one stretch
    for s in ("valid", "test"):
        years = {d.year for d in split_dates(s)}
        assert len(years) == 100


# --------------------------------------------------------------------------------------------- the draws


def test_draws_are_reproducible_and_streams_differ():
    a = draw_dates(dates_rng(7, "train"), 200, "train")
    assert a == draw_dates(dates_rng(7, "train"), 200, "train")
    assert a != draw_dates(dates_rng(7, "valid"), 200, "train")  # the streams of one seed differ
    assert a != draw_dates(dates_rng(8, "train"), 200, "train")
    assert draw_dates(dates_rng(7, "train"), 0, "train") == []


@pytest.mark.parametrize("split", SPLITS)
def test_draws_come_from_their_split(split):
    examples = draw_dates(dates_rng(1, split), 300, split)
    assert len(examples) == 300
    for text, iso, name in examples:
        date = D.fromisoformat(iso)
        assert date_split(date) == split
        assert write_date(date, name) == text


def test_default_draws_never_use_held_out_formats():
    examples = draw_dates(dates_rng(0, "train"), 5000, "train")
    used = {name for _, _, name in examples}
    assert used == set(TRAIN_FORMATS)  # every training format, and only those
    held = draw_dates(dates_rng(0, "test"), 400, "test", HELD_OUT_FORMATS)
    assert {name for _, _, name in held} == set(HELD_OUT_FORMATS)
    one = draw_dates(dates_rng(0, "test"), 20, "test", ["yyyymmdd"])
    assert all(name == "yyyymmdd" and text == iso.replace("-", "") for text, iso, name in one)


def test_draws_are_uniform_enough():
    examples = draw_dates(dates_rng(3, "train"), 28_000, "train")
    counts = np.array([sum(1 for e in examples if e[2] == n) for n in TRAIN_FORMATS])
    assert counts.min() > 800 and counts.max() < 1200  # 1000 each expected, sd ≈ 31
    years = np.array([int(iso[:4]) for _, iso, _ in examples])
    assert abs(np.mean(years < 2000) - 0.5) < 0.02


# ----------------------------------------------------------------------------------------------- the ids


def test_vocabulary_constants():
    assert OUTPUT_CHARS == "0123456789-"
    assert OUTPUT_VOCAB == ("<end>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "-")
    assert (END, N_OUTPUT, START, N_DECODER_INPUT, TY) == (0, 12, 12, 13, 11)
    assert (PAD, UNKNOWN, N_INPUT) == (0, 1, 2 + len(INPUT_CHARS))


def test_encode_input():
    ids, lengths = encode_input(["5/3/79", "Thu, 3 May 1979"])
    assert ids.shape == (15, 2) and ids.dtype == np.int64  # (Tx, B), time-major
    assert lengths.tolist() == [6, 15] and lengths.dtype == np.int64
    assert ids[:6, 0].tolist() == [2 + INPUT_CHARS.index(c) for c in "5/3/79"]
    assert (ids[6:, 0] == PAD).all() and (ids[:, 1] != PAD).all()
    back = "".join(INPUT_CHARS[i - 2] for i in ids[: lengths[1], 1])
    assert back == "Thu, 3 May 1979"
    assert ids.min() >= 0 and ids.max() < N_INPUT


def test_unknown_characters():
    ids, lengths = encode_input(["3 Mai 1979!", "Ω"])
    assert ids[:, 0].tolist() == [
        2 + INPUT_CHARS.index(c) if c in INPUT_CHARS else UNKNOWN for c in "3 Mai 1979!"
    ]
    assert ids[10, 0] == UNKNOWN and ids[4, 0] == 2 + INPUT_CHARS.index("i")  # "!" unknown, "i" known
    assert (ids[:10, 0] != UNKNOWN).all()
    assert ids[:, 1].tolist() == [UNKNOWN] + [PAD] * 10 and lengths.tolist() == [11, 1]
    ids, _ = encode_input(["z q x K k w"])
    assert ids[::2, 0].tolist() == [UNKNOWN] * 6  # letters no format writes


def test_encode_decode_output():
    Y_in, Y_out = encode_output(["1979-05-03", "2049-12-31"])
    assert Y_in.shape == Y_out.shape == (TY, 2) and Y_out.dtype == np.int64
    # "0" … "9" are 1 … 10, "-" is 11, <end> 0, <start> 12
    assert Y_out[:, 0].tolist() == [2, 10, 8, 10, 11, 1, 6, 11, 1, 4, 0]
    assert Y_in[:, 0].tolist() == [12, 2, 10, 8, 10, 11, 1, 6, 11, 1, 4]
    assert decode_output(Y_out[:, 0]) == "1979-05-03"
    assert decode_output(Y_out[:, 1]) == "2049-12-31"
    assert decode_output([2, 3, END, 4, 5]) == "12"  # stops at <end>
    assert decode_output([END]) == "" and decode_output([2, 3]) == "12"
    for _, iso, _ in draw_dates(dates_rng(0, "valid"), 50, "valid"):
        assert decode_output(encode_output([iso])[1][:, 0]) == iso


# ------------------------------------------------------------------------------------------- the errors


def test_input_errors():
    with pytest.raises(BpttError, match=r"^empty date$"):
        encode_input(["3 May 1979", ""])
    with pytest.raises(
        BpttError, match=rf"date too long: {MAX_INPUT_LEN + 1} characters, at most {MAX_INPUT_LEN}"
    ):
        encode_input(["x" * (MAX_INPUT_LEN + 1)])
    encode_input(["x" * MAX_INPUT_LEN])  # the longest accepted
    with pytest.raises(BpttError, match="expected the date as a string, got int"):
        encode_input([19790503])
    with pytest.raises(BpttError, match="texts: expected a list of strings"):
        encode_input("3 May 1979")
    with pytest.raises(BpttError) as info:
        encode_input(["y" * 500])
    assert "\n" not in str(info.value) and len(str(info.value)) < 120  # one line, not the whole text


@pytest.mark.parametrize("bad", ["1979-5-3", "1979-02-30", "19790503", "1979/05/03", 19790503, ""])
def test_output_errors(bad):
    with pytest.raises(BpttError, match=r"isos\[1\]: expected a date written YYYY-MM-DD"):
        encode_output(["1979-05-03", bad])


def test_decode_errors():
    with pytest.raises(BpttError, match="12 is not an output id"):
        decode_output([2, START])
    with pytest.raises(BpttError, match="1-dimensional"):
        decode_output(np.zeros((TY, 2), dtype=np.int64))


def test_draw_and_date_errors():
    rng = dates_rng(0, "train")
    with pytest.raises(BpttError, match="split: expected one of"):
        draw_dates(rng, 5, "training")
    with pytest.raises(BpttError, match="format: expected one of .* got 'dd_mm_yyyy'"):
        draw_dates(rng, 5, "train", ["d_month_yyyy", "dd_mm_yyyy"])
    with pytest.raises(BpttError, match="formats: expected a list of format names"):
        draw_dates(rng, 5, "train", "yyyymmdd")
    with pytest.raises(BpttError, match="formats: expected at least one"):
        draw_dates(rng, 5, "train", [])
    with pytest.raises(BpttError, match="rng: expected a numpy Generator"):
        draw_dates(0, 5, "train")
    with pytest.raises(BpttError, match="n: expected a non-negative integer"):
        draw_dates(rng, -1, "train")
    with pytest.raises(BpttError, match="stream: expected one of"):
        dates_rng(0, "dev")
    with pytest.raises(BpttError, match="seed: expected a non-negative integer"):
        dates_rng(-1, "train")
    with pytest.raises(BpttError, match="1949-12-31 is outside 1950-01-01 … 2049-12-31"):
        written_forms(D(1949, 12, 31))
    with pytest.raises(BpttError, match="2050-01-01 is outside"):
        date_split(D(2050, 1, 1))
    with pytest.raises(BpttError, match="expected a datetime.date, got str"):
        write_date("1979-05-03", "yyyymmdd")
