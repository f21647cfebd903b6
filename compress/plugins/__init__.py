"""The compression plugins users select with ``hinerv encode --plugin NAME[:key=value,...]``.

Importing this package registers every plugin in ``compress.hooks.PLUGINS``; ``hinerv plugins`` lists them.
"""
from compress.plugins import cap, htsgd, kmeans, l1, lowrank, mwt  # noqa: F401  (each registers itself)
