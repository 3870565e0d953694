"""The package version: one number for both distributions, kept in ``receiver_kit/_version.py``.

Its own module, so pure modules can name it without importing the package.
"""

from receiver_kit._version import __version__

__all__ = ["__version__"]
