"""ur4rec: multimodal sequential recommendation (UR4Rec V2) from the command line."""

__version__ = "0.1.0"
