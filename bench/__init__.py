"""gpt-frontend-bench: how GPT models fare through Apache TVM's frontends, against eager PyTorch."""

import warnings

__version__ = "0.1.0"

# torch.export pickles pytree specs through a deprecated isinstance check (torch 2.13): one
# FutureWarning per export, in every cell's log, saying nothing about the model or the run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
