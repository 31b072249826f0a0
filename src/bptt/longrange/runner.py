"""A long-range run: every configuration trained in turn, then the results, table, pictures and report.

The run's directory, DIR (``--out``):

    longrange.json        the settings (format "bptt-longrange", checksummed): --resume needs nothing else
    runs/NAME/            one configuration each ("adding-T100-lstm-forget1"; see ``trainer``)
    results.json          a list of one record per finished configuration: task, T, cell, init, activation,
                          metric ("mse", "cross_entropy" or "accuracy"), value (on fresh test sequences),
                          baseline, solved, sequences, seconds, and more (``LongRangeTrainer.finish``)
    table.md              the same as a table, as printed at the end
    curves-TASK.png       validation score against training sequences, per T, the baseline dashed
    gradients-TASK.png    messages ‖∂L/∂a⟨t⟩‖ by step and reach by distance, at the start and the end
    report.html           all of it on one self-contained page

A new run needs a new or empty DIR, and writes nothing before every setting is checked; ``--resume DIR``
goes on with the settings in DIR/longrange.json: finished configurations are kept, an interrupted one
continues from its checkpoint, the others start. DIR must hold only what a run writes: a file of the
user's there is refused, never written over. results.json, table.md, the pictures and the report are
rewritten after every configuration, so an interrupted run shows what it has.

Started by ``mpiexec -n N``, the N processes train every configuration together
(`bptt.training.parallel`); process 0 alone reads and writes DIR and prints.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict

from ..errors import BpttError
from ..io.atomic import is_temporary
from ..io.modelfiles import CHECKPOINT, CHECKPOINT_OLD, CHECKPOINT_TMP_PREFIX, save_document
from ..io.output import open_output
from ..resources import check_memory, gib
from ..tasks.longrange import get_task
from ..training.parallel import world
from ..training.progress import Progress
from ..training.rundir import check_checkpoint_dirs, check_new_run_dir, read_run_document
from .config import CELL_SPECS, LongRangeConfig
from .trainer import TABLE_HEAD, LongRangeTrainer, eval_chunk, table_row

SETTINGS_FILE = "longrange.json"
SETTINGS_FORMAT, SETTINGS_VERSION = "bptt-longrange", 1
RESULTS, TABLE, REPORT, RUNS = "results.json", "table.md", "report.html", "runs"
PICTURE = re.compile(r"(curves|gradients)-(adding|copy|order)\.png")
# what a configuration's directory holds, besides its checkpoint directories
RUN_FILES = ("log.jsonl", "weights.safetensors", "result.json")
CHECKPOINTS = (CHECKPOINT, CHECKPOINT_OLD)


def longrange(cfg, out, resume=False, progress=True):
    """Train every configuration of ``cfg`` into the directory ``out`` (or, with ``resume``, go on with the
    run there, ``cfg`` None), then write the results, the table, the pictures and the report.

    Returns: the records of results.json, one per configuration.
    """
    comm = world()
    with comm.collective():
        return _longrange(comm, cfg, os.fspath(out), resume, progress)


def _longrange(comm, cfg, out, resume, progress):
    def settings():  # (process 0)
        if not resume:
            check_new_dir(out)
            return cfg
        found = read_settings(out)
        check_run_dir(out, found)
        return found

    cfg = comm.on_root(settings)
    comm.every(lambda: check_memory_of(cfg))
    if not resume:

        def start():  # (process 0)
            try:
                os.makedirs(os.path.join(out, RUNS), exist_ok=True)
            except OSError as e:
                raise BpttError(f"{out}: cannot create the directory ({e.strerror or e})") from None
            doc = {"settings": asdict(cfg)}
            save_document(os.path.join(out, SETTINGS_FILE), SETTINGS_FORMAT, SETTINGS_VERSION, doc)

        comm.on_root(start)
    show = Progress(enabled=progress and comm.root, muted=not comm.root)
    results = []
    configurations = cfg.configurations()
    last_of_task = {conf.task: i for i, conf in enumerate(configurations)}
    for i, conf in enumerate(configurations):
        where = os.path.join(out, RUNS, conf.name)
        result = comm.on_root(lambda: read_result(where))  # noqa: B023 (called at once)
        trained = result is None
        if trained:
            show.line(f"[{i + 1}/{len(configurations)}] {conf.name}")
            result = LongRangeTrainer(cfg, conf, where, show, comm).run(resume=resume)
        results.append(result)
        # the task's pictures after each new result, and once for the results a resumed run found
        if comm.root:  # only process 0 writes
            task = conf.task if trained or last_of_task[conf.task] == i else None
            write_outputs(out, cfg, results, task)
    show.line(table(cfg, [r["record"] for r in results]).rstrip("\n"))
    return [r["record"] for r in results]


def write_outputs(out, cfg, results, task):
    """results.json, table.md, then the pictures of ``task`` and the report (None: neither), so far."""
    records = [r["record"] for r in results]
    with open_output(os.path.join(out, RESULTS)) as f:
        f.write(json.dumps(records, indent=1) + "\n")
    with open_output(os.path.join(out, TABLE)) as f:
        f.write(table(cfg, records))
    try:
        from ..pictures.longrange import draw_pictures, write_report
    except ImportError:  # matplotlib is optional for training
        return
    if task is not None:
        pictures = draw_pictures(out, results, task)
        write_report(os.path.join(out, REPORT), cfg, records, pictures)


def table(cfg, records):
    """The results as a Markdown table (one row per configuration)."""
    rows = [TABLE_HEAD, ["---"] * len(TABLE_HEAD), *map(table_row, records)]
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


# --------------------------------------------------------------------------------------- the directory


def check_new_dir(out):
    """A new run writes only into a new or empty directory."""
    check_new_run_dir(out, SETTINGS_FILE, "a long-range run")


def read_settings(out):
    """The settings of the run in ``out``, from its longrange.json (checksummed, every field checked)."""
    doc, path = read_run_document(out, SETTINGS_FILE, SETTINGS_FORMAT, SETTINGS_VERSION, "bptt longrange")
    return LongRangeConfig.from_json(doc.get("settings"), f"{path}: settings")


def check_run_dir(out, cfg):
    """Refuse a run directory holding what a run does not write: a file of the user's is never replaced."""
    names = {c.name for c in cfg.configurations()}
    top = (SETTINGS_FILE, RESULTS, TABLE, REPORT, RUNS)

    def foreign(where, listed, allowed, pattern=None):
        bad = [
            n for n in listed
            if n not in allowed and not is_temporary(n, allowed) and not (pattern and pattern.fullmatch(n))
        ]  # fmt: skip
        if bad:
            raise BpttError(
                f"{where}: holds files that are not this long-range run's ({', '.join(sorted(bad)[:3])});"
                " move them before --resume"
            )

    foreign(out, _listdir(out), top, PICTURE)
    for name in _listdir(os.path.join(out, RUNS)):
        if is_temporary(name, ()):
            continue
        path = os.path.join(out, RUNS, name)
        if name not in names or os.path.islink(path) or not os.path.isdir(path):
            raise BpttError(f"{os.path.join(out, RUNS)}: holds {name}, not a configuration of this run")
        listed = _listdir(path)
        foreign(
            path,
            [n for n in listed if n not in CHECKPOINTS and not n.startswith(CHECKPOINT_TMP_PREFIX)],
            RUN_FILES,
        )
        check_checkpoint_dirs(path, listed)


def _listdir(path):
    if not os.path.isdir(path):
        return []
    try:
        return os.listdir(path)
    except OSError as e:
        raise BpttError(f"{path}: cannot read the directory ({e.strerror})") from None


def read_result(where):
    """A finished configuration's result.json, or None when it has not finished."""
    path = os.path.join(where, "result.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            result = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise BpttError(f"{path}: cannot read ({e}); delete it to train the configuration again") from None
    if not isinstance(result, dict) or not isinstance(result.get("record"), dict):
        raise BpttError(
            f"{path}: expected a configuration's result; delete it to train the configuration again"
        )
    return result


def check_memory_of(cfg):
    """Refuse a run whose largest configuration cannot fit in memory, before anything is written."""
    longest = max(get_task(t).length(T) for t in cfg.tasks for T in cfg.lengths)
    gates = max({"rnn": 1, "gru": 3, "lstm": 4}[CELL_SPECS[c][0]] for c in cfg.cells)
    # floats a step keeps per sequence and unit: the gates, the states, their gradients (~2 a gate)
    per_step = (8 if cfg.dtype == "float64" else 4) * cfg.hidden * (2 * gates + 4)
    sequences = max(cfg.batch_size, eval_chunk(longest, cfg.hidden))
    need = per_step * longest * sequences
    check_memory(
        "this run",
        need,
        f"{gib(need)} for batches of {sequences} sequences of {longest:,} steps",
        "choose a smaller --T, --hidden or --batch-size",
    )
