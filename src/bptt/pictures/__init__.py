"""Pictures of a run (matplotlib, imported only when a picture is drawn) and the HTML report.

plots.py    loss and F1 curves, the unrolled graph, the gradient flow
report.py   one self-contained HTML page for a training run; reads and checks its log
"""
