"""One renderer per protocol: what the hub's effects (``effects.py``) look like.

``terminal`` gives the terminal protocol's LINE frames (the contract lines,
from ``text.py``), ``log`` the server's stdout lines, ``browser`` the web
page's JSON. A new protocol is a new renderer here, never a change to the rules.
"""
