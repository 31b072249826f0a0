"""Heads: what sits on the hidden states a⟨t⟩, the outputs ŷ and their losses, forward and backward.

    classification.py   a per-step output ŷ⟨t⟩ = σ or softmax(W_ya a⟨t⟩ + b_y) and its loss L⟨t⟩
    regression.py       the linear output ŷ⟨t⟩ = W_ya a⟨t⟩ + b_y and the squared error ½‖ŷ − y‖²
    placement.py        where the loss is taken: every step, the last real step (many-to-one), chosen steps

The public names are re-exported by ``bptt``.
"""
