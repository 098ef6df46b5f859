"""The program side: what runs a user's ``alchemy.run.py`` and keeps it running.

``app`` (``journal.app()``, ``Resource``, ``RunSettings``: the program's declarations),
``runner`` (load and run a program file once), ``dev`` (``journal dev``: re-run on every
change), ``env`` (``journal.env`` and ``.env`` files), ``scaffold`` (``journal init``).
"""
