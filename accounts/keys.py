"""API key material: how a plaintext key is made, split and hashed.

A key is `ak_` + 43 url-safe random characters (256 bits). Its first 12 characters are the
public prefix, stored for lookup and display; the database keeps only the SHA-256 of the whole
key. A fast hash is right here: the secret has full entropy, so there is nothing to
brute-force, and authentication stays a single indexed lookup. Comparison is constant-time.
"""

import hashlib
import hmac
import secrets

KEY_PREFIX = "ak_"
PREFIX_LENGTH = 12
MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 128


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_prefix(plaintext: str) -> str:
    return plaintext[:PREFIX_LENGTH]


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def key_matches(plaintext: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), key_hash)


def is_well_formed(plaintext: str) -> bool:
    return MIN_KEY_LENGTH <= len(plaintext) <= MAX_KEY_LENGTH and plaintext.isprintable()
