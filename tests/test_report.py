"""The HTML training report: self-contained, escaped, and rendered by a real headless browser."""

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.pictures.report import read_log, write_report
from tests.helpers import fake_log, png_ok, svg_texts

NASTY = "<script>alert('x')</script>"


class Page(HTMLParser):
    """Collects the tags' attributes and the text of an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def make_run(path, percent=False, sample=True):
    """A run directory as the tagger's training writes it."""
    path.mkdir()
    config = {"task": "person", "model": {"hidden": 8, "note": NASTY}, "train": {"epochs": 6, "lr": 0.002}}
    (path / "config.json").write_text(json.dumps(config))
    log = fake_log()
    for r in log:
        r["dev"]["per_type"] = {
            "PER": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "support": 120, "predicted": 107},
            NASTY: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2},
        }
        if percent:  # the tagger's metrics are percentages
            r["dev"] = {k: (100 * v if k != "per_type" else v) for k, v in r["dev"].items()}
            for s in r["dev"]["per_type"].values():
                s.update(precision=100 * s["precision"], recall=100 * s["recall"], f1=100 * s["f1"])
    (path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    if sample:
        items = [
            {"words": ["Harry", "Potter", "met", "<b>Ron</b>", "in", "Paris", "."],
             "predicted": ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "O"]},
        ]  # fmt: skip
        (path / "sample.json").write_text(json.dumps(items))
    return path


def images(html_text):
    """The decoded bytes of every <img>, all of which must be embedded data URIs."""
    out = []
    for tag, attrs in Page(html_text).tags:
        if tag == "img":
            src = attrs["src"]
            assert src.startswith("data:image/png;base64,")
            out.append(base64.b64decode(src.split(",", 1)[1]))
    return out


def test_report_is_self_contained_and_escaped(tmp_path):
    run = make_run(tmp_path / "run")
    out = write_report(run, tmp_path / "report.html")
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    for tag, attrs in page.tags:  # nothing is fetched from anywhere
        for key in ("src", "href"):
            assert not attrs.get(key) or attrs[key].startswith(("data:", "#")), (tag, attrs)
        assert not (tag == "link" or (tag == "script" and "src" in attrs))
    pictures = images(text)
    assert len(pictures) == 2  # curves and gradient flow
    for data in pictures:
        png_ok(io.BytesIO(data), 1000, 350)
    assert NASTY not in text and "<b>Ron</b>" not in text  # every string from the run is escaped
    words = " ".join(page.text)
    assert NASTY in words and "<b>Ron</b>" in words
    assert "Harry Potter" in words and "84.7" in words and "best dev F1" in words
    assert "80.0" in words  # the best epoch's F1, in percent
    assert "model.hidden" in words and "train.lr" in words


def test_report_scores_in_percent_whether_logged_as_fractions_or_not(tmp_path):
    from bptt.pictures.report import _per_type, _summary

    tables = []
    for percent in (False, True):
        log = read_log(make_run(tmp_path / f"run{percent}", percent=percent) / "log.jsonl")
        tables.append((_summary(log), "".join(_per_type(log))))
    assert tables[0] == tables[1] and "84.7" in tables[0][1] and "80.0" in tables[0][0]


def test_report_sample_argument_and_missing_parts(tmp_path):
    run = make_run(tmp_path / "run", sample=False)
    (run / "config.json").unlink()
    (run / "log.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")  # no dev, no gradients
    sample = [(["Ada", "Lovelace"], ["B-PER", "I-PER"])]
    text = write_report(run, tmp_path / "r.html", sample=sample).read_text()
    assert "No development scores" in text and "no message norms" in text
    assert "Ada Lovelace" in text and "No config.json" in text
    with pytest.raises(bptt.BpttError, match="sample: item 0: 2 words but 1 tags"):
        write_report(run, tmp_path / "r.html", sample=[(["Ada", "Lovelace"], ["O"])])


def test_report_errors_name_the_file(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(bptt.BpttError, match="not a directory"):
        write_report(tmp_path / "nope", tmp_path / "r.html")
    with pytest.raises(bptt.BpttError, match=r"r\.txt: expected a file name ending in \.html"):
        write_report(run, tmp_path / "r.txt")
    log = run / "log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n{oops\n" + lines[1] + "\n")
    with pytest.raises(bptt.BpttError, match=r"log\.jsonl:2: not valid JSON"):
        read_log(log)
    log.write_text(lines[0] + "\n" + lines[1][:20])  # torn: training writes whole records, so an error
    with pytest.raises(bptt.BpttError, match=r"log\.jsonl:2: not valid JSON .*; the last record is cut"):
        read_log(log)
    log.write_text("[1, 2]\n")
    with pytest.raises(bptt.BpttError, match=r"log\.jsonl:1: expected a JSON object"):
        read_log(log)
    log.unlink()
    with pytest.raises(bptt.BpttError, match=r"log\.jsonl: no such file"):
        write_report(run, tmp_path / "r.html")
    (run / "sample.json").write_text('{"words": []}')
    assert main(["report", str(run)]) == 2


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser installed (apt-get install chromium)")


def browse(tmp_path, *args):
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_renders_in_a_headless_browser(tmp_path):
    import matplotlib.image

    page = write_report(make_run(tmp_path / "run"), tmp_path / "report.html")
    url = page.resolve().as_uri()
    dom = browse(tmp_path, "--virtual-time-budget=10000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="true"' in dom.stdout  # every <img> decoded (naturalWidth > 0)
    assert "Tagged sample" in dom.stdout
    shot = tmp_path / "shot.png"
    run = browse(tmp_path, "--window-size=1200,1600", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    img = matplotlib.image.imread(str(shot))
    assert img.shape[:2] == (1600, 1200)
    assert img[..., :3].std() > 0.05  # text and pictures, not a blank page


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real tiny tagger trained for two epochs on the synthetic corpus."""
    from bptt.io.synthetic import make_corpus

    d = tmp_path_factory.mktemp("tiny")
    data = d / "train.txt"
    lines = ["".join(f"{w} {t}\n" for w, t in zip(s.words, s.tags)) for s in make_corpus(120, 0)]
    data.write_text("\n".join(lines))
    tiny = ["--hidden", "8", "--word-dim", "8", "--char-dim", "0", "--epochs", "2", "--quiet"]
    assert main(["train", "--train", str(data), "--dev", str(data), "--out", str(d / "run"), *tiny]) == 0
    return d / "run", data


@pytest.mark.slow
def test_commands_on_a_trained_model(trained_run, tmp_path, capsys):
    run, data = trained_run
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert len(images(text)) == 2 and "Scores by type" in text
    sentence = "Yesterday Marguerite Okafor flew to Lima ."
    assert main(["graph", "--model", str(run), sentence, "--out", str(tmp_path / "g.svg")]) == 0
    assert all(w in svg_texts(tmp_path / "g.svg") for w in sentence.split())
    out = tmp_path / "flow.png"
    probe = ["--data", str(data), "--sentences", "4"]
    assert main(["gradflow", "--model", str(run), *probe, "--out", str(out)]) == 0
    png_ok(out, 1000, 800)
    assert main(["graph", "--model", str(tmp_path / "none"), "a", "--out", str(tmp_path / "g.png")]) == 2
    assert "bptt: error:" in capsys.readouterr().err
    assert np.isfinite(json.loads((run / "log.jsonl").read_text().splitlines()[0])["train_loss"])
