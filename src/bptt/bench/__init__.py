"""Benchmarks of bptt against PyTorch: ``bptt bench``, and nothing else, imports this subpackage.

    speed.py    hand-written forward + BPTT of each cell against ``torch.nn.RNN``/``GRU``/``LSTM`` +
                autograd, gradients compared before timing (``bptt bench``)
    memory.py   checkpointed against full BPTT of the whole model: memory and time (``bptt bench --memory``)

It is no part of the runtime: the library and the other commands never import it, and the ``bench``
command imports it only when it runs (`bptt.cli.bench`). torch is imported lazily too, inside a
benchmark that needs it (``pip install bptt[bench]``), so bptt itself never depends on torch.
"""
