"""Pure numpy/torch pre- and post-processing: pose decoding, parsing, masks, TPS warps."""
