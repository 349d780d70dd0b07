"""The package version (a leaf: the package and its logger read it without a circle)."""

__version__ = "0.1.0"
