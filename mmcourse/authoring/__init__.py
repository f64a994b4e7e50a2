"""Tools for the people who write and build the course, not for its readers: chapters never import these.

``book_build`` builds the HTML book (``make book``); ``notebook_tools`` keeps the notebooks uniform (badges,
install cells, no outputs) and rewrites them to the book's rules (glue, tables, line length); ``exercises``
generates the student copies in ``exercises/`` from ``solutions/``.
"""
