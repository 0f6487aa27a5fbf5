"""Deferred standard-library imports (agent/deferred.py), each case in a fresh interpreter, where
nothing has imported the deferred modules yet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from agent_proc import write_config

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_plain_mqtt_round_imports_none_of_them(tmp_path: Path) -> None:
    """A whole round of the real probes, through the buffer, with a refused broker connection:
    asyncio, ssl, hashlib, urllib.request and http.client are never really imported."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    result = _python(
        f"""
        import json, sys, time
        from pathlib import Path
        from agent import deferred
        from agent.clock import SystemClock
        from agent.compose import build_agent, build_link, build_probes, open_buffer
        from agent.config import load_config
        config = load_config(Path({str(config)!r}))
        clock = SystemClock()
        buffer, start = open_buffer(config, now=clock.wall())
        link = build_link(config)
        agent = build_agent(config, clock=clock, boot_id="b", link=link,
                            probes=build_probes(config, clock), buffer=buffer,
                            start_samples=start)
        link.start()
        agent.round()
        time.sleep(1.0)  # the network thread meets the refused connection
        agent.round()
        link.stop(timeout_s=2)
        real = [n for n in deferred.DAEMON_UNUSED
                if not isinstance(sys.modules.get(n), deferred._Deferred)]
        print(json.dumps({{"real": real, "kept": buffer.count}}))
    """,
        "run",
    )  # as `python -m agent run` sees its arguments
    assert result["real"] == []
    assert isinstance(result["kept"], int) and result["kept"] > 10


def test_first_use_imports_the_real_module_and_ssl_errors_wait_for_ssl() -> None:
    """Reading an attribute imports the real module. The agent's own test of an error names ssl's
    exceptions without importing ssl, and they match nothing; code elsewhere, which may keep the
    classes, gets the real ones; once ssl is imported the names are ssl's own everywhere."""
    result = _python(
        """
        import json, sys
        import agent
        import ssl, http.client, urllib.request
        from agent import deferred
        from agent.mqtt_link import describe_error
        said = describe_error(ConnectionResetError("reset"))
        before = isinstance(sys.modules["ssl"], deferred._Deferred)
        elsewhere = ssl.SSLWantReadError is sys.modules["_ssl"].SSLWantReadError
        context = ssl.create_default_context()
        after = isinstance(sys.modules["ssl"], deferred._Deferred)
        status = http.client.OK
        quoted = urllib.request.quote("a b")
        print(json.dumps({"said": said, "before": before, "elsewhere": elsewhere,
                          "after": after, "verify": context.verify_mode == ssl.CERT_REQUIRED,
                          "status": int(status), "quoted": quoted,
                          "asyncio": isinstance(sys.modules["asyncio"], deferred._Deferred)}))
    """,
        "run",
    )
    assert result == {
        "said": "cannot reach the broker: reset",
        "before": True,
        "elsewhere": True,
        "after": False,
        "verify": True,
        "status": 200,
        "quoted": "a%20b",
        "asyncio": True,
    }


def test_only_the_daemon_defers() -> None:
    """`diag`, `status` and every other command import as usual (diag uses scapy and TLS)."""
    result = _python(
        """
        import json, sys
        import agent
        from agent import deferred
        print(json.dumps({"deferred": [n for n, m in sys.modules.items()
                                       if isinstance(m, deferred._Deferred)]}))
    """,
        "diag",
    )
    assert result == {"deferred": []}


def test_threads_racing_for_the_first_use_all_get_the_real_module() -> None:
    """paho's network thread and the main loop may reach a deferred module at the same moment."""
    result = _python(
        """
        import json, sys, threading
        import agent
        import hashlib
        assert type(hashlib).__name__ == "_Deferred"
        barrier = threading.Barrier(8)
        digests = []
        def use():
            barrier.wait()
            digests.append(hashlib.sha256(b"x").hexdigest()[:8])
        threads = [threading.Thread(target=use) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps({"digests": sorted(set(digests)), "n": len(digests)}))
    """,
        "run",
    )
    assert result == {"digests": ["2d711642"], "n": 8}
