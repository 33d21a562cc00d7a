"""Message catalogs, one module per language."""
