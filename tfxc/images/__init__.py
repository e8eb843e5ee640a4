"""Images in: labelled image sources, the graph's decoding and conversion, and keras-hub vision backbones
pooled to features (`python -m tfxc.extract`, the `image` encoder)."""

#: The default pixel budget of an image (width x height, read from its header before decoding): Pillow's
#: `Image.MAX_IMAGE_PIXELS`, its decompression-bomb limit (1024 * 1024 * 1024 // 4 // 3).
DEFAULT_MAX_PIXELS = 89_478_485
