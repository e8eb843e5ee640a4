"""Images in: labelled image sources, the graph's decoding and conversion, and keras-hub vision backbones
pooled to features (`python -m tfxc.extract`, the `image` encoder)."""
