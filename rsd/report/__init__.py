"""Tables, plots and the HTML pages of ``rsd report``, ``rsd experiment``, ``rsd eval`` and
``rsd demo``: ``labels`` (the display labels of metric identifiers), ``runs`` (reading run
directories and summarising them over seeds), ``tables`` (Markdown and text tables),
``plots`` (figures as PNG bytes), ``page`` (HTML) and ``build`` (``rsd report``'s outputs)."""
