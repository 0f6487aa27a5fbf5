"""Memory savings for the daemon alone, decided by its entry point (`village-agent run` calls
`defer()` before anything imports structlog or paho-mqtt); the technician's commands, the simulator
and the tests import as usual.

Standard-library modules that our libraries import at the top but a plain-MQTT daemon never uses
are imported only when something first uses them. structlog imports asyncio (for async log
methods the agent does not call) and uuid (for a deprecated thread-local API); paho-mqtt imports
ssl, hashlib, urllib.request and http.client (for TLS, websockets and proxies). A stand-in sits in
sys.modules until an attribute of it is read; then the real module is imported and answers from
then on (Mercurial's demandimport does the same for the same reason). A TLS site reads ssl at its
first connection, so it pays for ssl as it must; paho's `except ssl.SSLError:` clauses on plain
sockets read the attribute too, so the first failed read of a plain connection imports ssl.

Why not the stdlib's `importlib.util.LazyLoader`: on Python 3.11 it is not thread-safe (two
threads touching a lazy module at once can see it half-initialised: CPython gh-114763, fixed in
3.12.3, never in 3.11), and paho's network thread and the main thread do exactly that.

CPython's own SHA-256 (`sha256_digest`) is here for the same reason: hashlib loads OpenSSL's
libcrypto, 3.5 MB of RSS, for the few digests the agent takes (the config fingerprint, the splay).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types

# CPython's own SHA-256, not hashlib's: hashlib loads OpenSSL's libcrypto, 3.5 MB of RSS.
try:
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]  # 3.11
except ImportError:  # pragma: no cover - 3.12 renamed it; failing that, hashlib's
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]


def sha256_digest(data: bytes) -> bytes:
    return bytes(_sha256(data).digest())


DAEMON_UNUSED = ("asyncio", "ssl", "urllib.request", "http.client", "hashlib", "uuid")

# One lock for all stand-ins: the first use may come from paho's network thread and the main
# thread at once, and importing under a lock keeps either from seeing a half-made module.
_LOCK = threading.RLock()


class _Deferred(types.ModuleType):
    def __getattr__(self, attr: str) -> object:
        # Only called for names the stand-in lacks: everything but __name__ and __spec__.
        name = self.__name__
        with _LOCK:
            if sys.modules.get(name) is self:
                del sys.modules[name]
                try:
                    importlib.import_module(name)
                except BaseException:
                    sys.modules[name] = self
                    raise
        return getattr(sys.modules[name], attr)


def defer(names: tuple[str, ...] = DAEMON_UNUSED) -> None:
    """Put stand-ins for `names` in sys.modules, unless a real module is there already."""
    for name in names:
        if name in sys.modules:
            continue
        stand_in = _Deferred(name)
        # The import statement reads __spec__ (is the module still initialising?): answer it
        # without importing. There is no __path__: importing a submodule (`import asyncio.events`)
        # asks for it, which imports the real package, and the import system then runs that
        # submodule a second time. Nothing on the daemon's path does that, which is why only
        # `run` defers (agent/cli/main.py).
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)

        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            # `import urllib.request` then `urllib.request.x` reads the attribute of the package.
            setattr(importlib.import_module(parent), child, stand_in)
