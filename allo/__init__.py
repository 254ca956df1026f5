"""allo: learn Laplacian representations of gridworlds with ALLO (ICLR 2024)."""

__version__ = "0.1.0"
