"""The drivers: they own time. A cell knows one step; a driver runs it over a sequence and back.

    rnn.py            full BPTT: ``rnn_forward``/``rnn_backward`` (any cell), the vanilla cell's step pair
    truncated.py      BPTT(k1, k2), and BPTT cut every k steps
    checkpointed.py   √T-memory BPTT: exact gradients from checkpoints and recomputed segments
    bidirectional.py  both directions over right-padded sequences, outputs side by side

Each takes ``cell=`` and carries, cuts and checkpoints the cell's state through its ``Cell``
(`bptt.cells`), so a new cell needs no driver edit. The public names are re-exported by ``bptt``.
"""
