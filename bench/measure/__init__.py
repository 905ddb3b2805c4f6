"""Measuring, whatever the backend: the timing methods (interleaved blocks, the solo check, the
machine-load probe), parity against eager, and loss/perplexity on real text."""
