"""Reading and writing: data files, text, model files, and every file bptt writes.

atomic.py           the one atomic file writer (``atomic_open``): every file bptt writes goes through it
output.py           files the user names for output (and standard output), written safely
safetensors_io.py   the safetensors format, read and written without the safetensors package
modelfiles.py       model directories and training checkpoints, checksummed, checked on load
conll.py            CoNLL files and tag schemes (IOB1, IOB2, IOBES)
text.py             raw text into tokens and sentences, and back
synthetic.py        the demo's built-in corpus, generated
"""
