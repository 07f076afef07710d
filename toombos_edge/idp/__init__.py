"""Identity-provider tokens (JWTs) accepted beside API keys, when configured."""

from .jwks import Jwks
from .verifier import Identity, TokenRules, TokenVerifier, looks_like_jwt

__all__ = ["Identity", "Jwks", "TokenRules", "TokenVerifier", "looks_like_jwt"]
