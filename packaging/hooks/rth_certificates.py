# PyInstaller runtime hook: HTTPS from the frozen app (urllib in `models download`) trusts the same
# certificate bundle as huggingface_hub does, whatever OpenSSL paths the build machine had.
import os

try:
    import certifi

    os.environ.setdefault("SSL_CERT_FILE", certifi.where())
except ImportError:
    pass
