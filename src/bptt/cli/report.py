"""``bptt report``: one self-contained HTML page for a training run."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  bptt report runs/person                         writes runs/person/report.html
  bptt report runs/person --out person.html

The page holds the configuration, loss and dev-F1 curves, the per-type scores of the best
epoch, the gradient-flow plots and a tagged sample (DIR/sample.json). Pictures are embedded,
so the file opens anywhere, offline.
"""


def add_parser(sub):
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a training run",
        description="Write one HTML page (no network needed) describing the training run in DIR.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", help="the run directory written by `bptt train`")
    p.add_argument("--out", metavar="FILE", help="the page to write (default DIR/report.html)")
    p.set_defaults(run=run)


def run(args):
    from ..pictures.report import write_report

    out = args.out if args.out is not None else Path(args.dir) / "report.html"
    path = write_report(args.dir, out)
    print(f"wrote {path}")
