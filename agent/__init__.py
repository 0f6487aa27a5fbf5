"""village-agent: the edge agent of village internet access points."""

__version__ = "0.1.0"
