"""Heads: what sits on the hidden states a⟨t⟩, the outputs ŷ and their losses, forward and backward.

    classification.py   a per-step output ŷ⟨t⟩ = σ or softmax(W_ya a⟨t⟩ + b_y) and its loss L⟨t⟩

The public names are re-exported by ``bptt``.
"""
