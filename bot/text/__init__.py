"""The words: the catalog and the renderer that turns notices into text."""
