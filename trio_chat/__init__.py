"""trio-chat: a multi-channel chat server and terminal client built on trio.

This package's ``__init__`` imports nothing heavy on purpose: the console scripts
must validate their arguments and exit within milliseconds of start-up.
"""

__version__ = "0.2.0"
