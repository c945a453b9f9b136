"""Workers: the only package that runs handlers."""

from djobs.worker.worker import Worker

__all__ = ["Worker"]
