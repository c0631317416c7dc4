"""paperlib: a reproducible companion to five papers on removing JPEG compression artifacts."""
__version__ = "0.1.0"
