"""The compression plugins users select with ``hinerv encode --plugin NAME[:key=value,...]``.

Importing this package registers every plugin in ``compress.hooks.PLUGINS``; ``hinerv plugins`` lists them.
"""
from compress.plugins import l1  # noqa: F401  (registers 'l1')
