"""Griffe extension: Sphinx roles in keras-vpg's docstrings (``:class:`VPG```) shown as code.

The docstrings are read by people in an editor and by ``help()`` as well as by this
site; a role becomes a plain code span here, so the API pages do not show ``:class:``.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|const):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
