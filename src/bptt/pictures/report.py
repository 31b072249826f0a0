"""One self-contained HTML page for a training run: configuration, curves, scores, gradient flow.

The page needs no network: the pictures are PNGs embedded as base64 ``data:`` URIs, the CSS
is inline, there are no external fonts, and the one script is inline (it marks ``<body
data-rendered="true">`` once every picture has decoded, which the browser test checks).
Every string that comes from the run is escaped.

A run directory, as written by the tagger's training:

    DIR/config.json    {"task": "person" | "ner", "model": {...}, "train": {...}, ...}
    DIR/log.jsonl      one JSON object per epoch: epoch, train_loss, seconds, tokens_per_s,
                       dev {f1, precision, recall, token_accuracy, per_type {TYPE: {precision,
                       recall, f1, support, predicted}}}, grad_norm, clip_fraction,
                       message_norms [K floats], reach [K floats] (optional)
    DIR/sample.json    optional: [{"words": [...], "predicted": [...]}, ...]
"""

from __future__ import annotations

import base64
import html
import json
import math
import reprlib
import tempfile
from pathlib import Path

from ..errors import BpttError
from ..io.output import check_output, open_output
from .plots import percent_factor

REPORT_INPUTS = ("config.json", "log.jsonl", "sample.json")  # what a report reads: never written over

ENTITY_COLOURS = {"PER": "#ffd38a", "LOC": "#b8e6b0", "ORG": "#a9d8f5", "MISC": "#dcc6f2"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 1.5em 2em 3em; color: #1d2430; background: #fff;
       line-height: 1.45; }
h1 { font-size: 1.7em; margin: 0 0 .2em; }
h2 { font-size: 1.25em; margin: 1.8em 0 .6em; padding-bottom: .2em; border-bottom: 1px solid #e3e6ea; }
.sub { color: #5b6675; margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; margin-top: 1.2em; }
.card { border: 1px solid #e3e6ea; border-radius: 8px; padding: .6em 1em; min-width: 9em;
        background: #f8fafc; }
.card b { display: block; font-size: 1.35em; }
.card span { color: #5b6675; font-size: .85em; }
table { border-collapse: collapse; font-size: .92em; }
th, td { padding: .3em .8em; border-bottom: 1px solid #e8ebef; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #c9ced6; }
.config { columns: 2 24em; column-gap: 2.5em; font-size: .92em; }
.config div { break-inside: avoid; padding: .2em 0; border-bottom: 1px solid #eef0f3;
              overflow-wrap: anywhere; }
.config code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; color: #3b4656; margin-right: .6em; }
img { max-width: 100%; height: auto; border: 1px solid #eef0f3; border-radius: 6px; }
.note { color: #5b6675; font-size: .9em; }
.sentence { margin: .35em 0; line-height: 2.1; }
mark { border-radius: 4px; padding: .1em .3em; background: #eee; }
mark sub { font-size: .65em; font-weight: 700; margin-left: .25em; color: #4a3a10; vertical-align: baseline; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var ok = Array.prototype.every.call(document.images, function (img) {
    return img.complete && img.naturalWidth > 0;
  });
  document.body.setAttribute("data-rendered", ok ? "true" : "false");
});
"""


# ---------------------------------------------------------------------------------------------
# reading a run


MAX_CELLS = 10_000_000  # epochs × positions in the gradient-flow heatmaps (80 MB as float64)
# the per-epoch numbers the report and its plots read (any other field is left alone)
NUMBERS = (
    "train_loss",
    "seconds",
    "tokens_per_s",
    "lr",
    "grad_norm",
    "clip_fraction",
    "elapsed",
    "skipped_steps",
)


def read_log(path):
    """Read DIR/log.jsonl: one JSON object per epoch, epochs 1, 2, 3, ... in order (blank lines skipped).

    Training rewrites the log atomically as a whole, so every line is a complete record. A line
    that is not (a torn last line included) means something else wrote or damaged the file: it is
    an error naming the line, never a report that silently leaves out an epoch, maybe the best one.
    Every field the report reads is checked (`check_record`).
    Returns: list of dicts.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BpttError(f"{path}: no such file (the training log)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BpttError(f"{path}: cannot read ({e})") from None
    lines = text.split("\n")
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            torn = (
                "; the last record is cut short (bptt train writes whole records)" if i == len(lines) else ""
            )
            raise BpttError(f"{path}:{i}: not valid JSON ({e.msg}){torn}") from None
        except (ValueError, RecursionError) as e:  # an integer of thousands of digits, deep nesting
            raise BpttError(f"{path}:{i}: not valid JSON ({str(e)[:80] or 'nests too deeply'})") from None
        check_record(record, len(records) + 1, f"{path}:{i}")
        records.append(record)
    if not records:
        raise BpttError(f"{path}: no epochs logged yet")
    K = max(len(r.get(k) or ()) for r in records for k in ("message_norms", "reach"))
    if len(records) * K > MAX_CELLS:
        raise BpttError(
            f"{path}: {len(records)} epochs × {K} positions of gradient flow: too many to plot"
            f" (at most {MAX_CELLS:,} cells)"
        )
    return records


def check_record(r, epoch, where):
    """Check one record of the training log, the ``epoch``-th; errors start with ``where``."""
    if not isinstance(r, dict):
        raise BpttError(f"{where}: expected a JSON object, got {_short(r)}")
    if type(r.get("epoch")) is not int or r["epoch"] != epoch:
        raise BpttError(
            f"{where}: epoch: expected {epoch} (one record per epoch, in order), got {_short(r.get('epoch'))}"
        )
    for key in NUMBERS:
        if key in r and not _is_number(r[key]):
            raise BpttError(f"{where}: {key}: expected a number, got {_short(r[key])}")
    for key in ("message_norms", "reach"):
        v = r.get(key, [])
        if not (isinstance(v, list) and all(x is None or _is_number(x) for x in v)):
            raise BpttError(f"{where}: {key}: expected a list of numbers, got {_short(v)}")
    if "dev" in r:
        _check_scores(r["dev"], "dev", where)
        per_type = r["dev"].get("per_type", {})
        if not isinstance(per_type, dict):
            raise BpttError(
                f"{where}: dev.per_type: expected an object of TYPE: scores, got {_short(per_type)}"
            )
        for name, scores in per_type.items():
            _check_scores(scores, f"dev.per_type.{name}", where)


def _check_scores(scores, name, where):
    if not isinstance(scores, dict):
        raise BpttError(f"{where}: {name}: expected an object of scores, got {_short(scores)}")
    for k, v in scores.items():
        if k != "per_type" and not _is_number(v):
            raise BpttError(f"{where}: {name}.{k}: expected a number, got {_short(v)}")


def _is_number(v):
    """A JSON number (NaN and Infinity included: the log may hold them) that converts to a float."""
    return type(v) is float or (type(v) is int and abs(v) < 1e308)


def _short(value):
    return reprlib.repr(value)


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BpttError(f"{path}: cannot read the {what} ({e})") from None
    except json.JSONDecodeError as e:
        raise BpttError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:
        raise BpttError(f"{path}: not valid JSON ({str(e)[:80] or 'nests too deeply'})") from None


def read_sample(path):
    """Read DIR/sample.json: ``[{"words": [...], "predicted": [...]}, ...]``.

    Returns: list of (words, predicted_tags).
    """
    data = _read_json(path, "sample")
    if not isinstance(data, list):
        raise BpttError(f"{path}: expected a JSON list of {{'words': [...], 'predicted': [...]}}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "words" not in item or "predicted" not in item:
            raise BpttError(f"{path}: item {i}: expected an object with 'words' and 'predicted'")
        out.append((item["words"], item["predicted"]))
    return _check_sample(out, str(path))


def _check_sample(sample, name):
    out = []
    for i, pair in enumerate(sample):
        try:
            words, tags = pair
        except (TypeError, ValueError):
            raise BpttError(f"{name}: item {i}: expected a pair (words, predicted_tags)") from None
        if not (isinstance(words, (list, tuple)) and isinstance(tags, (list, tuple))):
            raise BpttError(f"{name}: item {i}: expected a list of words and a list of tags")
        words, tags = [str(w) for w in words], [str(t) for t in tags]
        if len(words) != len(tags):
            raise BpttError(f"{name}: item {i}: {len(words)} words but {len(tags)} tags")
        out.append((words, tags))
    return out


# ---------------------------------------------------------------------------------------------
# the page


def write_report(run_dir, out_path, sample=None):
    """Write one self-contained HTML page describing the training run in ``run_dir``.

    sample: list of (words, predicted_tags) to show tagged; None reads DIR/sample.json if present.
    Returns: the path written.
    """
    run_dir, out_path = Path(run_dir), Path(out_path)
    if not run_dir.is_dir():
        raise BpttError(f"{run_dir}: not a directory (expected a training run directory)")
    if out_path.suffix.lower() not in (".html", ".htm"):
        raise BpttError(f"{out_path}: expected a file name ending in .html")
    if out_path.parent != Path("") and not out_path.parent.is_dir():
        raise BpttError(f"{out_path}: folder {out_path.parent} does not exist")
    config = {}
    if (run_dir / "config.json").exists():
        config = _read_json(run_dir / "config.json", "configuration")
        if not isinstance(config, dict):
            raise BpttError(f"{run_dir / 'config.json'}: expected a JSON object")
    records = read_log(run_dir / "log.jsonl")
    if sample is None and (run_dir / "sample.json").exists():
        sample = read_sample(run_dir / "sample.json")
    elif sample is not None:
        sample = _check_sample(sample, "sample")
    inputs = [run_dir / name for name in REPORT_INPUTS]
    check_output(out_path, inputs)  # before the pictures are drawn
    page = render_report(run_dir.resolve().name, config, records, sample)
    with open_output(out_path, inputs) as f:  # atomically: a reader never sees half a page
        f.write(page)
    return out_path


def render_report(name, config, records, sample=None):
    """The HTML text of the report (see ``write_report``)."""
    from .plots import plot_curves, plot_gradient_flow

    esc = html.escape
    task = str(config.get("task", "")) if config else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>bptt report: {esc(name)}</title>",
        f"<style>{CSS}</style></head>",
        "<body>",
        "<header><h1>Training report</h1>",
        f'<p class="sub">run <b>{esc(name)}</b>' + (f" · task <b>{esc(task)}</b>" if task else "") + "</p>",
        _summary(records),
        "</header>",
        *_config(config),
    ]
    with tempfile.TemporaryDirectory(prefix="bptt-report-") as tmp:
        curves = plot_curves(records, Path(tmp) / "curves.png")
        parts += [
            '<section id="curves"><h2>Loss and development F1</h2>',
            _img(curves, "training loss and development F1 per epoch"),
            "</section>",
        ]
        parts += _per_type(records)
        parts.append('<section id="gradient-flow"><h2>Gradient flow</h2>')
        try:
            flow = plot_gradient_flow(records, Path(tmp) / "flow.png")
        except BpttError:
            parts.append('<p class="note">The log has no message norms, reach or gradient norms.</p>')
        else:
            parts += [
                '<p class="note">The message ‖∂L/∂a⟨t⟩‖ reaching each position of the probe sentences'
                " and how far back the gradient reaches (‖∂a⟨t⟩/∂a⟨t−d⟩‖, spectral norm), per epoch,"
                " on log colour scales: a message that fades towards the start of the sentence, or a"
                " reach that falls far below 1, is the vanishing gradient; a reach far above 1, or"
                " frequent clipping, the exploding one.</p>",
                _img(flow, "gradient flow heatmaps over training"),
            ]
        parts.append("</section>")
    parts += _sample(sample)
    parts += [
        '<footer><p class="note">Written by bptt. Self-contained: no network access needed.</p></footer>',
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _img(path, alt):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"></p>'


def _num(v, pct=None, digits=1):
    """A number for a table; ``pct`` multiplies a score into percent (100 or 1)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "—"
    return f"{pct * v:.{digits}f}" if pct else (f"{v:,}" if isinstance(v, int) else f"{v:.4g}")


def _best(records):
    """Index of the first epoch with the best dev F1 (the last epoch when none has one)."""
    f1 = [r.get("dev", {}).get("f1") if isinstance(r.get("dev"), dict) else None for r in records]
    scored = [(v, -i) for i, v in enumerate(f1) if isinstance(v, (int, float)) and math.isfinite(v)]
    return -max(scored)[1] if scored else len(records) - 1


def _best_dev(records):
    """The record of the best epoch and its dev scores (a dict, maybe empty)."""
    best = records[_best(records)]
    return best, best.get("dev") if isinstance(best.get("dev"), dict) else {}


def _summary(records):
    best, dev = _best_dev(records)
    pct = percent_factor(records)
    seconds = sum(r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float)))
    speeds = [r["tokens_per_s"] for r in records if isinstance(r.get("tokens_per_s"), (int, float))]
    cards = [
        (str(len(records)), "epochs"),
        (_num(dev.get("f1"), pct=pct), f"best dev F1 (epoch {html.escape(str(best.get('epoch', '?')))})"),
        (_num(records[-1].get("train_loss")), "last training loss"),
        (f"{seconds:.3g} s" if seconds else "—", "training time"),
        (f"{sum(speeds) / len(speeds):,.0f}" if speeds else "—", "tokens / s"),
    ]
    body = "".join(f"<div class='card'><b>{v}</b><span>{k}</span></div>" for v, k in cards)
    return f'<div class="cards">{body}</div>'


def _per_type(records):
    best, dev = _best_dev(records)
    pct = percent_factor(records)
    per_type = dev.get("per_type") if isinstance(dev.get("per_type"), dict) else {}
    esc = html.escape
    out = [f'<section id="per-type"><h2>Scores by type (dev, epoch {esc(str(best.get("epoch", "?")))})</h2>']
    if not per_type and "f1" not in dev:
        return out + ['<p class="note">No development scores in the log.</p></section>']
    head = ["type", "precision", "recall", "F1", "support", "predicted"]
    out.append("<table><tr>" + "".join(f'<th class="{"" if h == "type" else "num"}">{h}</th>' for h in head))
    for name, s in sorted(per_type.items()):
        s = s if isinstance(s, dict) else {}
        colour = ENTITY_COLOURS.get(str(name), "#e6e6e6")
        out.append(
            f'<tr><td><mark style="background:{colour}">{esc(str(name))}</mark></td>'
            + "".join(
                f'<td class="num">{_num(s.get(k), pct=pct)}</td>' for k in ("precision", "recall", "f1")
            )
            + "".join(f'<td class="num">{_num(s.get(k))}</td>' for k in ("support", "predicted"))
            + "</tr>"
        )
    out.append(
        '<tr class="total"><td>all</td>'
        + "".join(f'<td class="num">{_num(dev.get(k), pct=pct)}</td>' for k in ("precision", "recall", "f1"))
        + '<td class="num" colspan="2">token accuracy '
        + f"{_num(dev.get('token_accuracy'), pct=pct, digits=2)}</td></tr></table>"
    )
    return out + ["</section>"]


def _sample(sample):
    if not sample:
        return []
    from ..io.conll import spans

    out = ['<section id="sample"><h2>Tagged sample</h2>']
    for i, (words, tags) in enumerate(sample):
        entities = spans(tags, name=f"sample[{i}]")
        pieces, at = [], 0
        for type_, start, end in entities:
            pieces += [html.escape(w) for w in words[at:start]]
            colour = ENTITY_COLOURS.get(type_, "#e6e6e6")
            text = html.escape(" ".join(words[start:end]))
            pieces.append(f'<mark style="background:{colour}">{text}<sub>{html.escape(type_)}</sub></mark>')
            at = end
        pieces += [html.escape(w) for w in words[at:]]
        out.append(f'<p class="sentence">{" ".join(pieces)}</p>')
    return out + ["</section>"]


def _flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _config(config):
    if not config:
        return ['<section id="config"><h2>Configuration</h2><p class="note">No config.json.</p></section>']
    rows = "".join(
        f"<div><code>{html.escape(k)}</code> {html.escape(json.dumps(v, ensure_ascii=False))}</div>"
        for k, v in _flatten(config)
        if not (k.startswith("checksums.") or k.endswith("sha256"))  # file integrity, not settings
    )
    return ['<section id="config"><h2>Configuration</h2>', f'<div class="config">{rows}</div>', "</section>"]
