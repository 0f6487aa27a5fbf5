"""Standard-library modules that our libraries import at the top but a plain-MQTT daemon never uses,
imported only when something first uses them.

structlog imports asyncio (for async log methods the agent does not call) and uuid (for a
deprecated thread-local API); paho-mqtt imports ssl, hashlib, urllib.request and http.client (for
TLS, websockets and proxies). On a gateway without
TLS and with the speed test off they cost 9 MB of RSS, a third of the daemon's. A stand-in sits
in sys.modules until an attribute of it is read; then the real module is imported and answers
from then on. Mercurial's demandimport does the same for the same reason.

One refinement: an `except ssl.SSLError:` clause (paho has several on its plain-socket paths)
reads the attribute whenever any error passes. Before ssl is really imported no SSL socket can
exist, so no ssl exception can be raised: to paho and the agent, which read those names only at
the moment they test an error, the stand-in answers with a class nothing raises, instead of
importing ssl for the first reset connection. Anyone else gets the real module: asyncio, for one,
keeps ssl's exception classes in module globals when it is imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types

DAEMON_UNUSED = ("asyncio", "ssl", "urllib.request", "http.client", "hashlib", "uuid")

_SSL_EXCEPTIONS = frozenset(
    {
        "CertificateError",
        "SSLCertVerificationError",
        "SSLEOFError",
        "SSLError",
        "SSLSyscallError",
        "SSLWantReadError",
        "SSLWantWriteError",
        "SSLZeroReturnError",
    }
)

# One lock for all stand-ins: the first use may come from paho's network thread and the main
# thread at once, and importing under a lock keeps either from seeing a half-made module.
_LOCK = threading.RLock()


# Modules that name ssl's exceptions only when they test an error, never to keep them.
_TEST_SSL_ERRORS_WHEN_RAISED = ("paho.", "agent.")


class _NeverRaised(Exception):
    """Stands for an ssl exception while ssl is not imported, when none can be raised."""


class _Deferred(types.ModuleType):
    def __getattr__(self, attr: str) -> object:
        # Only called for names the stand-in lacks: everything but __name__ and __spec__.
        name = self.__name__
        if name == "ssl" and attr in _SSL_EXCEPTIONS and sys.modules.get(name) is self:
            caller = str(sys._getframe(1).f_globals.get("__name__", ""))
            if caller.startswith(_TEST_SSL_ERRORS_WHEN_RAISED):
                return _NeverRaised
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
        # `run` defers (agent/__init__.py).
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)

        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            # `import urllib.request` then `urllib.request.x` reads the attribute of the package.
            setattr(importlib.import_module(parent), child, stand_in)
