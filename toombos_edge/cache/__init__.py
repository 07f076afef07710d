"""The content cache."""

from .content_cache import ContentCache

__all__ = ["ContentCache"]
