"""Reference-exact torch networks of the try-on zoo, one file per family (no file I/O here)."""
