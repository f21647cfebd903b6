"""The compression plugins users select with ``hinerv encode --plugin NAME[:key=value,...]``.

Importing this package registers every plugin in ``compress.hooks.PLUGINS``; ``hinerv plugins`` lists them.
"""
# each registers itself
from compress.plugins import cap, htsgd, indistill, kmeans, l1, lowrank, mwt, sharedproj, softround  # noqa: F401
