"""Training a tagger: data, minibatches, BPTT, Adam, dev evaluation, checkpoints and resume.

One run writes everything into its output directory:

    run.json            the settings of the run (``--resume DIR`` needs nothing else)
    config.json, vocab.json, weights.safetensors     the best model so far (by dev F1)
    checkpoint/         the full training state after the last finished epoch (or, after
                        SIGINT/SIGTERM, before the next batch of the epoch in progress)
    log.jsonl           one JSON record per epoch (loss, dev scores, speed, gradient flow)
    loss.png, f1.png    the curves, redrawn after every epoch
    sample.json         a few dev sentences tagged by the best model

Every file is written atomically, so an interrupted run (Ctrl-C, SIGTERM, a crash or a
power cut) leaves the last good model and checkpoint intact. Ctrl-C and SIGTERM stop after the
batch in progress and save the state inside the epoch: the RNG state the epoch's batch order was
drawn from, the current one, the next batch and the running totals. ``--resume`` continues from
the checkpoint (SIGKILL or a power cut lose the epoch in progress) and, without a time budget,
ends with a model bit-identical to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import faults
from .conll import detect_scheme, read_conll, text_lines, to_iob2
from .errors import BpttError
from .metrics import evaluate, token_f1
from .optim import clip_grad_norm, make_optimizer
from .tagger import TaggerConfig, batch_indices, init_tagger_params, make_batch, tagger_loss
from .tagging import Tagger, batch_message_norms, check_length, tables_for
from .vocab import FormTable, Vocab

PROBE_K = 40  # positions of the gradient-flow probe
EMA_EVERY = 4  # steps between updates of the weights' moving average (decay ema**4 each time)


@dataclass
class TrainConfig:
    """How to train. Defaults are the configuration benchmarked in BENCHMARKS.md."""

    train: str = ""  # training file (CoNLL columns)
    dev: str | None = None  # development file, evaluated after every epoch
    tag_column: int = -1  # column of the tag (default: the last)
    strip_prefix: str | None = "auto"  # remove a language prefix like "en:" from words
    epochs: int = 100  # at most this many passes over the training data
    batch_size: int = 32  # sentences per update
    optimizer: str = "adam"  # "adam", "momentum" or "sgd"
    lr: float = 3e-3  # learning rate
    lr_decay: float = 0.05  # lr_epoch = lr / (1 + lr_decay · epoch)
    clip: float = 5.0  # clip the global gradient norm to this (0: off)
    bptt_steps: int = 0  # truncated BPTT: cut the word-level messages every this many steps (0: full)
    ema: float = 0.999  # evaluate and save a moving average of the weights (Polyak); 0: the raw weights
    patience: int = 10  # stop after this many epochs without a better dev F1
    time_budget: float | None = None  # minutes of training, then stop with the best model
    seed: int = 0  # every random choice (init, batches, dropout) follows from it
    embeddings: str | None = None  # optional GloVe-format text file of pretrained word vectors
    max_bad_steps: int = 20  # stop when this many updates in a row had a non-finite loss or gradient
    max_sentences: int | None = None  # use only the first N training sentences (quick runs)
    extra: dict = field(default_factory=dict)  # free-form notes kept with the run


class Corpus:
    """Sentences of one file, encoded: form ids, class labels and gold IOB2 tags."""

    def __init__(self, path, sentences, gold, forms, labels):
        self.path, self.sentences, self.gold, self.forms, self.labels = path, sentences, gold, forms, labels

    @property
    def n_tokens(self):
        return sum(len(f) for f in self.forms)


def read_tagged(path, tcfg):
    """Read a CoNLL file; return (sentences, its scheme, IOB2 tags)."""
    sentences = read_conll(path, tag_column=tcfg.tag_column, strip_prefix=tcfg.strip_prefix)
    scheme = detect_scheme(sentences)
    return sentences, scheme, [to_iob2(s.tags, scheme) for s in sentences]


def task_tags(task, gold_train, path):
    """Output classes: person → O/PER; ner → every IOB2 tag of the training file."""
    if task == "person":
        if not any(t.endswith("-PER") for tags in gold_train for t in tags):
            raise BpttError(f"{path}: no PER tags: the person task needs words tagged B-PER/I-PER")
        return ["O", "PER"]
    found = sorted({t for tags in gold_train for t in tags if t != "O"}, key=lambda t: (t[2:], t[0]))
    return ["O"] + found


def person_only(tags):
    """Keep the PER entities of IOB2 tags, everything else O."""
    return [t if t.endswith("-PER") else "O" for t in tags]


def encode(path, sentences, gold, cfg, table):
    """Form ids and labels per sentence; checks every tag is one the model can output."""
    forms, labels = [], []
    index = {t: i for i, t in enumerate(cfg.tags)}
    for s, tags in zip(sentences, gold):
        forms.append(table.encode(s.words))
        if cfg.task == "person":
            labels.append(np.array([t.endswith("-PER") for t in tags], dtype=np.int64))
        else:
            for i, t in enumerate(tags):
                if t not in index:
                    as_read = repr(s.tags[i]) + ("" if s.tags[i] == t else f" (IOB2 {t!r})")
                    raise BpttError(f"{path}:{s.line + i}: tag {as_read} never occurs in the training file")
            labels.append(np.array([index[t] for t in tags], dtype=np.int64))
    if cfg.task == "person":
        gold = [person_only(t) for t in gold]
    return Corpus(path, sentences, gold, forms, labels)


def read_embeddings(path, dim):
    """Pretrained vectors from a GloVe-format text file: ``word v1 … v_dim`` a line.

    Returns: (words found in the file, their vectors (n, dim) float32).
    """
    words, vectors = [], []
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BpttError(f"{path}: cannot read embeddings ({e.strerror})") from None
    with f:
        for lineno, line in text_lines(f, path, "word vectors"):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # a word2vec-style "count dim" header
            if len(parts) != dim + 1:
                raise BpttError(
                    f"{path}:{lineno}: expected a word and {dim} numbers (--word-dim), got {len(parts) - 1}"
                )
            try:
                v = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise BpttError(f"{path}:{lineno}: not a number in the vector of {parts[0]!r}") from None
            if not np.isfinite(v).all():
                raise BpttError(f"{path}:{lineno}: NaN or Inf in the vector of {parts[0]!r}")
            words.append(parts[0])
            vectors.append(v)
    if not words:
        raise BpttError(f"{path}: no vectors in the embeddings file")
    return words, np.stack(vectors)


class Progress:
    """One status line, redrawn in place on a terminal; a line per epoch otherwise."""

    def __init__(self, stream=None, enabled=True):
        self.stream = sys.stderr if stream is None else stream  # the one of the moment, not of import time
        self.enabled = enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.last = 0.0

    def update(self, text):
        now = time.monotonic()
        if self.tty and now - self.last > 0.2:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self.last = now

    def line(self, text, always=False):
        """Write a line; ``always`` writes it even when the display is off (for warnings)."""
        if not (self.enabled or always):
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def _fmt_time(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Stop(KeyboardInterrupt):
    """Raised by the loop after SIGINT or SIGTERM, once the training state is saved."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum  # the command exits with 128 + signum, as if the signal had ended it


# the running totals of an epoch, saved with a checkpoint taken inside it
EPOCH_TOTALS = ("total_loss", "tokens", "n_sentences", "n_clipped", "n_bad", "n_skipped", "n_steps")


class Trainer:
    """Runs (or resumes) one training run into ``out``."""

    def __init__(self, tcfg, mcfg, out, progress=True):
        self.tcfg, self.mcfg, self.out = tcfg, mcfg, out
        self.progress = Progress(enabled=progress)
        self.dtype = np.float32
        self.stop_signal = None  # set by SIGINT/SIGTERM: save and stop before the next batch
        self.resume_at = None  # restored from a checkpoint taken inside an epoch: where to go on

    # ---------------------------------------------------------------- set-up
    def prepare(self):
        t, m = self.tcfg, self.mcfg
        train_sents, self.scheme, gold_train = read_tagged(t.train, t)
        if t.max_sentences:
            train_sents, gold_train = train_sents[: t.max_sentences], gold_train[: t.max_sentences]
        m.tags = task_tags(m.task, gold_train, t.train)
        extra_words, pretrained = (), None
        if t.embeddings:
            extra_words, vectors = read_embeddings(t.embeddings, m.word_dim)
        self.vocab = Vocab.build([s.words for s in train_sents], extra_words=extra_words)
        if t.embeddings:
            rows = np.array([self.vocab.word_id[w] for w in extra_words if w in self.vocab.word_id])
            keep = [i for i, w in enumerate(extra_words) if w in self.vocab.word_id]
            pretrained = (rows, vectors[keep])
        self.table = FormTable(self.vocab)
        self.train = encode(t.train, train_sents, gold_train, m, self.table)
        self.dev = None
        if t.dev:
            dev_sents, _, gold_dev = read_tagged(t.dev, t)
            for s in dev_sents:  # the dev sentences are tagged
                check_length(s.words, f"{t.dev}:{s.line}")
            self.dev = encode(t.dev, dev_sents, gold_dev, m, self.table)
        self.tables = tables_for(self.vocab, self.table)
        self.params = init_tagger_params(
            m,
            len(self.vocab.words),
            len(self.vocab.chars),
            seed=t.seed,
            dtype=self.dtype,
            pretrained=pretrained,
        )
        # the moving average of the weights, updated every EMA_EVERY steps: it is what is evaluated and saved
        self.ema = {k: v.copy() for k, v in self.params.items()} if t.ema else None
        self.opt = make_optimizer(t.optimizer, t.lr)
        self.rng = np.random.default_rng(t.seed + 1)
        self.epoch, self.best_f1, self.bad_epochs, self.train_seconds = 0, -1.0, 0, 0.0
        self.ema_updates = 0
        self.log = []
        # fixed probes of gradient flow, measured after every epoch: the first 64 sentences,
        # and the 8 longest of them for the reach ‖∂a⟨1+d⟩/∂a⟨1⟩‖
        probe_set = self.dev or self.train
        first = np.arange(min(64, len(probe_set.forms)))
        self.probe = make_batch(probe_set.forms, probe_set.labels, first)
        longest = sorted(first, key=lambda i: -len(probe_set.forms[i]))[:8]
        self.reach_probe = [probe_set.sentences[i].words for i in longest]

    def model_config(self):
        return {
            "task": self.mcfg.task,
            "tagger": self.mcfg.to_json(),
            "scheme": self.scheme,
            "train": asdict(self.tcfg),
        }

    # ---------------------------------------------------------------- state
    def state(self, inside_epoch=None):
        """The counters of the run; ``inside_epoch``: where in the current epoch it stopped."""
        return {
            "epoch": self.epoch,
            "best_f1": self.best_f1,
            "bad_epochs": self.bad_epochs,
            "train_seconds": self.train_seconds,
            "ema_updates": self.ema_updates,
            "rng": self.rng.bit_generator.state,
            "log": self.log,
            **({"inside_epoch": inside_epoch} if inside_epoch else {}),
        }

    def save_checkpoint(self, inside_epoch=None):
        from .modelfiles import save_checkpoint

        arrays = {f"param.{k}": v for k, v in self.params.items()}
        if self.ema is not None:
            arrays.update({f"ema.{k}": v for k, v in self.ema.items()})
        arrays.update({f"opt.{k}": v for k, v in self.opt.state_dict().items()})
        save_checkpoint(self.out, arrays, self.state(inside_epoch))

    def restore(self):
        from .modelfiles import load_checkpoint

        found = load_checkpoint(self.out)
        if found is None:
            return False
        arrays, state = found
        for k in self.params:
            self.params[k] = arrays[f"param.{k}"]
            if self.ema is not None:
                self.ema[k] = arrays[f"ema.{k}"]
        self.opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
        self.epoch, self.best_f1 = state["epoch"], state["best_f1"]
        self.bad_epochs, self.train_seconds = state["bad_epochs"], state["train_seconds"]
        self.ema_updates = state.get("ema_updates", 0)
        self.rng.bit_generator.state = state["rng"]
        self.log = state["log"]
        self.resume_at = state.get("inside_epoch")
        return True

    def save_model(self):
        from .modelfiles import save_model_dir

        save_model_dir(self.out, self.weights, self.model_config(), self.vocab.to_json())

    @property
    def weights(self):
        """The weights that are evaluated and saved: the moving average when there is one."""
        return self.ema if self.ema is not None else self.params

    def update_ema(self):
        # early on the average forgets faster, so it never lags far behind a short run
        self.ema_updates += 1
        decay = min(self.tcfg.ema**EMA_EVERY, (1 + self.ema_updates) / (10 + self.ema_updates))
        for k, v in self.params.items():
            e = self.ema[k]
            e *= decay
            e += (1 - decay) * v

    # ---------------------------------------------------------------- evaluation
    def predict(self, corpus):
        tagger = Tagger(self.weights, self.mcfg, self.vocab, self.scheme)
        return tagger.predict([s.words for s in corpus.sentences], batch_size=256)

    def evaluate(self, corpus):
        pred = self.predict(corpus)
        scores = evaluate(corpus.gold, pred)
        record = scores.to_dict()
        if self.mcfg.task == "person":
            record["token_precision"], record["token_recall"], record["token_f1"] = token_f1(
                corpus.gold, pred
            )
        return record, pred

    # ---------------------------------------------------------------- the loop
    def run(self, resume=False):
        t = self.tcfg
        os.makedirs(self.out, exist_ok=True)
        self.prepare()
        resumed = resume and self.restore()
        budget = None if t.time_budget is None else t.time_budget * 60
        p = self.progress
        p.line(
            f"{self.mcfg.task} tagger: {len(self.train.forms):,} sentences ({self.train.n_tokens:,} words),"
            f" vocabulary {len(self.vocab.words):,}, {sum(v.size for v in self.params.values()):,} parameters"
            + (f"; resumed after epoch {self.epoch}" if resumed else "")
            + (f" and {self.resume_at['batch']} batches of epoch {self.epoch + 1}" if self.resume_at else "")
        )
        stop_reason = None
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.epoch < t.epochs:
                stop_reason = self.run_epoch(budget)
                if self.stop_signal is not None:  # came during the epoch's evaluation or saving
                    raise Stop(self.stop_signal)
                if stop_reason:
                    break
                if self.dev is not None and self.bad_epochs >= t.patience:
                    stop_reason = f"no better dev F1 for {t.patience} epochs"
                    break
            else:
                stop_reason = f"{t.epochs} epochs"
        except KeyboardInterrupt:
            p.line("interrupted: the training state is saved; continue with --resume " + self.out)
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        p.line(f"stopped: {stop_reason}; best dev F1 {self.best_f1:.2f}; model in {self.out}")
        return self.log

    def on_signal(self, signum, frame):
        """SIGINT/SIGTERM: finish the batch, save, stop. A second one stops at once."""
        if self.stop_signal is not None:
            raise Stop(signum)  # every file on disk is still whole: they are all written atomically
        self.stop_signal = signum
        self.progress.line(f"{signal.Signals(signum).name}: saving the training state, then stopping")

    def run_epoch(self, budget):
        t, m = self.tcfg, self.mcfg
        self.opt.lr = t.lr / (1 + t.lr_decay * self.epoch)
        lengths = [len(f) for f in self.train.forms]
        at, self.resume_at = self.resume_at, None
        if at is None:  # a fresh epoch
            at = {"batch": 0, "rng_epoch": self.rng.bit_generator.state, "seconds": 0.0, "grad_norms": []}
            at["totals"] = dict.fromkeys(EPOCH_TOTALS, 0)
            batches = batch_indices(lengths, t.batch_size, self.rng)
        else:  # resumed inside the epoch: the same batch order, drawn from the epoch's first RNG state
            rng = np.random.default_rng()
            rng.bit_generator.state = at["rng_epoch"]
            batches = batch_indices(lengths, t.batch_size, rng)
        start = time.monotonic() - at["seconds"]
        totals = at["totals"]
        total_loss, tokens, n_sentences, n_clipped, n_bad, n_skipped, n_steps = map(totals.get, EPOCH_TOTALS)
        grad_norms = list(at["grad_norms"])
        stop_reason = None
        for i in range(at["batch"], len(batches)):
            faults.point(f"batch:{self.epoch + 1}:{i}")  # test-only (BPTT_FAULT); a no-op otherwise
            if self.stop_signal is not None:  # SIGINT/SIGTERM: save the state before batch i, then stop
                running = (total_loss, tokens, n_sentences, n_clipped, n_bad, n_skipped, n_steps)
                self.save_checkpoint(
                    {
                        **at,
                        "batch": i,
                        "seconds": time.monotonic() - start,
                        "totals": dict(zip(EPOCH_TOTALS, running)),
                        "grad_norms": grad_norms,
                    }
                )
                raise Stop(self.stop_signal)
            index = batches[i]
            batch = make_batch(self.train.forms, self.train.labels, index)
            L, grads, _ = tagger_loss(
                self.params, m, batch, self.tables, rng=self.rng, truncate=t.bptt_steps or None
            )
            norm = clip_grad_norm(grads, t.clip)
            if not (math.isfinite(L) and math.isfinite(norm)):
                n_bad += 1  # a non-finite step never reaches the weights
                n_skipped += 1
                self.progress.line(
                    f"warning: skipped an update with a non-finite loss or gradient ({n_bad} in a row)",
                    always=True,
                )
                if n_bad >= t.max_bad_steps:
                    raise BpttError(
                        f"training diverged: {n_bad} updates in a row had a non-finite loss or gradient;"
                        f" the last good model is in {self.out} (try a smaller --lr)"
                    )
                continue
            n_bad = 0
            n_clipped += bool(t.clip) and norm > t.clip
            grad_norms.append(norm)
            self.opt.step(self.params, grads)
            n_steps += 1
            if self.ema is not None and n_steps % EMA_EVERY == 0:
                self.update_ema()
            total_loss += L * len(index)
            n_sentences += len(index)
            tokens += int(batch.lengths.sum())
            elapsed = time.monotonic() - start
            if i % 10 == 0:
                left = (len(batches) - i - 1) * elapsed / (i + 1)
                self.progress.update(
                    f"epoch {self.epoch + 1} {100 * (i + 1) // len(batches):3d}%"
                    f"  loss {total_loss / max(1, n_sentences):.3f}"
                    f"  {tokens / max(elapsed, 1e-9):,.0f} words/s  epoch left {_fmt_time(left)}"
                    f"  best dev F1 {max(self.best_f1, 0):.2f}"
                )
            if budget is not None and self.train_seconds + elapsed >= budget:
                stop_reason = f"time budget of {t.time_budget:g} minutes"
                break
        seconds = time.monotonic() - start
        self.epoch += 1
        faults.point(f"eval:{self.epoch}")
        record = {
            "epoch": self.epoch,
            "train_loss": total_loss / max(1, n_sentences),
            "seconds": seconds,
            "tokens_per_s": tokens / max(seconds, 1e-9),
            "lr": self.opt.lr,
            "grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "clip_fraction": n_clipped / max(1, n_steps),
            "skipped_steps": n_skipped,
        }
        total, count = batch_message_norms(self.weights, m, self.probe, self.tables, PROBE_K)
        with np.errstate(invalid="ignore"):
            record["message_norms"] = [float(v) for v in (total / count) if np.isfinite(v)]
        reach = Tagger(self.weights, m, self.vocab).reach_profile(self.reach_probe, K=PROBE_K)
        record["reach"] = [float(v) for v in reach if np.isfinite(v)]
        improved = False
        if self.dev is not None:
            record["dev"], pred = self.evaluate(self.dev)
            f1 = record["dev"]["f1"]
            improved = f1 > self.best_f1
            if improved:
                self.best_f1, self.bad_epochs = f1, 0
            else:
                self.bad_epochs += 1
        else:
            improved = True
        self.log.append(record)
        if improved:
            self.save_model()
            if self.dev is not None:
                self.save_sample(pred)
        # the budget counts wall time: training, evaluation and saving alike
        self.train_seconds += time.monotonic() - start
        record["elapsed"] = self.train_seconds
        self.write_log()
        self.save_checkpoint()
        dev_text = f"  dev F1 {record['dev']['f1']:.2f}" if "dev" in record else ""
        budget_text = ""
        if budget is not None:
            budget_text = f"  budget left {_fmt_time(budget - self.train_seconds)}"
        self.progress.line(
            f"epoch {self.epoch:3d}  loss {record['train_loss']:.4f}  {record['tokens_per_s']:,.0f} words/s"
            f"{dev_text}{' *' if improved and dev_text else ''}"
            f"  ({_fmt_time(self.train_seconds)}){budget_text}"
        )
        return stop_reason

    def save_sample(self, pred, n=8):
        from .modelfiles import atomic_write

        sample = [
            {"words": s.words, "predicted": p, "gold": g}
            for s, p, g in list(zip(self.dev.sentences, pred, self.dev.gold))[:n]
        ]
        atomic_write(os.path.join(self.out, "sample.json"), json.dumps(sample).encode())

    def write_log(self):
        from .modelfiles import atomic_write

        text = "".join(json.dumps(r) + "\n" for r in self.log)
        atomic_write(os.path.join(self.out, "log.jsonl"), text.encode())
        try:
            from .plots import plot_f1, plot_loss
        except ImportError:  # plotting is optional for training
            return
        plot_loss(self.log, os.path.join(self.out, "loss.png"))
        if any("dev" in r for r in self.log):
            plot_f1(self.log, os.path.join(self.out, "f1.png"))


def write_run_file(out, tcfg, mcfg):
    from .modelfiles import atomic_write

    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise BpttError(f"{out}: cannot create the output directory ({e.strerror})") from None
    payload = {"train": asdict(tcfg), "model": mcfg.to_json()}
    atomic_write(os.path.join(out, "run.json"), json.dumps(payload, indent=1).encode())


def read_run_file(out):
    path = os.path.join(out, "run.json")
    if not os.path.exists(path):
        raise BpttError(f"{path}: no such file; --resume needs a directory written by bptt train")
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        return TrainConfig(**payload["train"]), TaggerConfig(**payload["model"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise BpttError(f"{path}: not a bptt run file ({e})") from None


def train(tcfg, mcfg, out, resume=False, progress=True):
    """Train (or, with ``resume``, continue) a tagger into directory ``out``.

    Returns: the per-epoch log records.
    """
    if resume:
        tcfg, mcfg = read_run_file(out)
    else:
        write_run_file(out, tcfg, mcfg)
    return Trainer(tcfg, mcfg, out, progress=progress).run(resume=resume)
