"""BigBiGAN in PyTorch: adversarial representation learning (Donahue & Simonyan, 2019)."""

__version__ = "0.1.0"
