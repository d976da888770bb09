"""forethought: learn a model of the world from data, look ahead with it, then act."""

__version__ = "0.1.0"
