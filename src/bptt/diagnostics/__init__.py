"""Looking inside BPTT: checking gradients and taking them apart.

gradcheck.py   central differences in float64 against the hand-written gradients
ledger.py      each step's share of every gradient, the messages ∂L/∂a⟨t⟩, and the reach
               ‖∂s⟨T⟩/∂s⟨t⟩‖ (``jacobian_reach``, the one reach computation)
"""
