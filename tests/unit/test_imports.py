"""The daemon never pays scapy's import cost: only diagnostics may import it."""

import ast
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
# The technician's diagnostics (agent/diag/) may use scapy lazily; everything else is on the
# daemon's path and may not import it at module level.
DIAGNOSTICS = AGENT / "diag"


def test_run_module_graph_does_not_import_scapy() -> None:
    """Importing the CLI and everything `run` builds leaves scapy out of sys.modules."""
    code = (
        "import sys, agent.cli.main, agent.cli.run, agent.daemon.compose, agent.daemon.loop\n"
        "import agent.probes.system, agent.probes.dns, agent.probes.clients\n"
        "import agent.probes.speedtest.probe, agent.probes.speedtest.transport\n"
        "from agent.daemon.compose import PROBES\n"
        "assert 'scapy' not in sys.modules, sorted(m for m in sys.modules if 'scapy' in m)\n"
        "print(len(PROBES))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 7


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:  # module level only: an import inside a function is paid when called
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_daemon_module_imports_scapy_at_top_level() -> None:
    """No module of the agent outside the diagnostics imports scapy at module level."""
    offenders = [
        str(path.relative_to(AGENT))
        for path in AGENT.rglob("*.py")
        if DIAGNOSTICS not in path.parents and "scapy" in _top_level_imports(path)
    ]
    assert offenders == []
