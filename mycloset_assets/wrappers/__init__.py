"""Complete model wrappers: pre-processing -> network -> post-processing, one module per family."""
