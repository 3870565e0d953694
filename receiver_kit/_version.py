"""The one version number of both distributions (``trakkr-receiver-kit`` and ``flask-trakkr-webhooks``).

Both setup files read it with ``attr:``, statically (nothing is imported at build time).
"""

__version__ = "0.1.0"
