"""Whole networks, built from cells, drivers and heads, with their losses and gradients.

lecture.py          the lecture's model in one call: ``init_params``, ``sequence_loss``
layers.py           embedding lookup and dropout, each a forward/backward pair
tagger_network.py   the sequence tagger's math: ``TaggerConfig``, forward, backward, loss, decoding
tagger.py           a trained tagger as an object: ``load_tagger``, ``Tagger.predict``, ``Tagger.tag``
vocab.py            the tagger's vocabularies and per-form lookup tables
metrics.py          conlleval's entity scores, and token F1
"""
