"""gpt-frontend-bench: how GPT models fare through Apache TVM's frontends, against eager PyTorch."""

__version__ = "0.1.0"
