"""Every tolerance the tests use, with the reason for it.

fp32 GEMMs in a different blocking order (OpenBLAS vs PyTorch's MKL/oneDNN) differ by a few
ulp per dot product; through 12-24 residual layers that grows to ~1e-6 relative on hidden
states. The bounds below leave an order of magnitude of margin over what we measure.
"""
LOGITS_ATOL = 1e-4          # the bar: max |visionc - transformers| on logits
HIDDEN_ATOL = 1e-4          # hidden states (values are O(1) after layer norm, O(10) in the residual stream)
HIDDEN_RTOL = 1e-5
ATTN_ATOL = 1e-5            # attention probabilities lie in [0, 1]
BATCH_INVARIANCE_ATOL = 1e-5  # same image alone vs in a batch: only GEMM blocking differs
EMBED_ATOL = 1e-5           # unit-norm embeddings
