"""Storage: the only package that imports peewee."""

from djobs.storage.core import TRANSIENT_ERRORS, PeeweeStorage, connect, new_id, one_line
from djobs.storage.pool import PoolConfig

__all__ = ["TRANSIENT_ERRORS", "PeeweeStorage", "PoolConfig", "connect", "new_id", "one_line"]
