"""Main networks: shared encoders, task decoders and the multi-task network around them."""

from auxnas.evaluator.networks.mtl import MTLNetwork, build_network

__all__ = ["MTLNetwork", "build_network"]
