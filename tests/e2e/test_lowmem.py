"""The daemon's deferred standard-library imports (agent/lowmem.py), each case in a fresh
interpreter, where nothing has imported the deferred modules yet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.agent_proc import write_config

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_plain_mqtt_round_imports_none_of_them(tmp_path: Path) -> None:
    """The agent started as `run` starts it (stand-ins first, then the composition root), a whole
    round of the real probes through the buffer with a refused broker connection: asyncio, ssl,
    hashlib, uuid, urllib.request and http.client are never really imported."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    result = _python(
        f"""
        import json, sys, time
        from agent import lowmem
        lowmem.defer()
        from pathlib import Path
        from agent.clock import SystemClock
        from agent.config.load import load_config
        from agent.daemon.compose import Sources, build_link, start_agent
        config = load_config(Path({str(config)!r}))
        config.state_dir.mkdir(parents=True, exist_ok=True)
        link = build_link(config)
        agent, _ = start_agent(config, Sources(clock=SystemClock()), boot_id="b", link=link)
        link.start()
        agent.round()
        time.sleep(1.0)  # the network thread meets the refused connection
        agent.service(0)
        agent.round()
        link.stop(timeout_s=2)
        real = [n for n in lowmem.DAEMON_UNUSED
                if not isinstance(sys.modules.get(n), lowmem._Deferred)]
        print(json.dumps({{"real": real, "kept": agent.buffer.count,
                          "state": agent.outbox.stats.broker_state}}))
    """
    )
    assert result["real"] == []
    assert result["state"] == "unreachable"
    assert isinstance(result["kept"], int) and result["kept"] > 10


def test_first_use_imports_the_real_module() -> None:
    """Reading an attribute imports the real module, which answers from then on; the modules
    nothing touched stay stand-ins."""
    result = _python(
        """
        import json, sys
        from agent import lowmem
        lowmem.defer()
        import ssl, http.client, urllib.request
        before = isinstance(sys.modules["ssl"], lowmem._Deferred)
        context = ssl.create_default_context()
        after = isinstance(sys.modules["ssl"], lowmem._Deferred)
        status = http.client.OK
        quoted = urllib.request.quote("a b")
        print(json.dumps({"before": before, "after": after,
                          "verify": context.verify_mode == ssl.CERT_REQUIRED,
                          "status": int(status), "quoted": quoted,
                          "asyncio": isinstance(sys.modules["asyncio"], lowmem._Deferred)}))
    """
    )
    assert result == {
        "before": True,
        "after": False,
        "verify": True,
        "status": 200,
        "quoted": "a%20b",
        "asyncio": True,
    }


def test_only_the_run_command_defers() -> None:
    """The package, the other commands and the simulator import as usual, whatever argv says:
    the choice is the `run` entry point's, not a side effect of importing agent."""
    result = _python(
        """
        import contextlib, io, json, sys
        import agent, simulator.virtual.fleet
        from agent.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            main(["version"])
        print(json.dumps({"deferred": [n for n, m in sys.modules.items()
                                       if type(m).__name__ == "_Deferred"]}))
    """,
        "run",
    )
    assert result == {"deferred": []}


def test_the_run_command_defers_before_structlog_and_paho_load(tmp_path: Path) -> None:
    """`village-agent run` puts the stand-ins in place before anything imports structlog or
    paho-mqtt: structlog is loaded (the run module imports it) yet every stand-in is still there,
    asyncio and uuid among them, which structlog imports at the top. A config error then exits 78."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    config.write_text(config.read_text() + "\nunknown_key: 1\n")
    result = _python(
        f"""
        import json, sys
        from agent.cli.main import main
        try:
            main(["run", "--config", {str(config)!r}])
        except SystemExit as exit:
            code = exit.code
        print(json.dumps({{"code": code,
                          "deferred": sorted(n for n, m in sys.modules.items()
                                             if type(m).__name__ == "_Deferred"),
                          "structlog": "structlog" in sys.modules}}))
    """
    )
    assert result["code"] == 78
    assert result["structlog"] is True
    assert result["deferred"] == sorted(
        ["asyncio", "ssl", "urllib.request", "http.client", "hashlib", "uuid"]
    )


def test_threads_racing_for_the_first_use_all_get_the_real_module() -> None:
    """paho's network thread and the main loop may reach a deferred module at the same moment."""
    result = _python(
        """
        import json, sys, threading
        from agent import lowmem
        lowmem.defer()
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
    """
    )
    assert result == {"digests": ["2d711642"], "n": 8}
