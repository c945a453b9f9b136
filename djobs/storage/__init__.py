"""Storage: the only package that imports peewee or holds SQL."""

from djobs.storage.connection import connect
from djobs.storage.core import PeeweeStorage
from djobs.storage.errors import one_line
from djobs.storage.pool import PoolConfig

__all__ = ["PeeweeStorage", "PoolConfig", "connect", "one_line"]
