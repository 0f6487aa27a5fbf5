"""systemd/install.sh against a staging root: tree, permissions, account, idempotency, uninstall.

The install is real (python -m venv, pip install of the locked dependencies and of a copy of this
checkout). To stay fast it passes --pip-args --no-deps: only the four locked packages are fetched
(from pip's cache when the test venv has them), not their own dependencies, and pip still needs
its build backend (setuptools, wheel) from the index or from pip's cache.
"""

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent

REPO = Path(__file__).resolve().parents[2]
NAME = "village-agent"
UNIT = Path("usr/local/lib/systemd/system/village-agent.service")
WANTS = Path("etc/systemd/system/multi-user.target.wants/village-agent.service")
SYSUSERS = Path("usr/local/lib/sysusers.d/village-agent.conf")
VENV = Path("opt/village-agent")
CONF = Path("etc/village-agent")
STATE = Path("var/lib/village-agent")
COMMAND = Path("usr/local/bin/village-agent")
# Secret files as a technician might copy them: too open, too closed, world-readable.
SECRETS = {"password": 0o644, "client.key": 0o600, "ca.crt": 0o664}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="install.sh chowns files and needs root"),
    pytest.mark.skipif(
        shutil.which("systemd-sysusers") is None or shutil.which("systemctl") is None,
        reason="systemd-sysusers and systemctl are needed to create the user and enable the unit",
    ),
]

Listing = dict[str, tuple[int, int, int, int, int, str]]


def listing(root: Path) -> Listing:
    """Path -> (mode, uid, gid, size, mtime in ns, link target) for everything under root."""
    entries: Listing = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            st = path.lstat()
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            entries[str(path.relative_to(root))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size,
                st.st_mtime_ns,
                target,
            )
    return entries


def run_install(repo: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the checkout's install.sh for a staging root; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(repo / "systemd" / "install.sh"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def install(repo: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """A fast install: the locked dependencies without theirs, this test's interpreter."""
    return run_install(repo, root, "--python", sys.executable, "--pip-args", "--no-deps")


def with_this_interpreter(root: Path) -> None:
    """Give the staging root this machine's interpreter and standard library at their own paths
    (links: the image is used here), as a gateway's root of the same build has them."""
    for real in (Path(sys.executable).resolve(), Path(sysconfig.get_paths()["stdlib"])):
        inside = root / real.relative_to("/")
        inside.parent.mkdir(parents=True, exist_ok=True)
        if not inside.is_symlink():
            inside.symlink_to(real)


def gid_of(root: Path, group: str) -> int:
    """The GID of a group in the staging root's /etc/group."""
    for line in (root / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return int(fields[2])
    raise AssertionError(f"no group {group} in {root}/etc/group")


def copy_tree(source: Path, destination: Path) -> None:
    """Copy keeping modes, owners, mtimes and symlinks, so the copy is the same install."""
    subprocess.run(["cp", "-a", str(source), str(destination)], check=True)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout, so install.sh sees a stable tree while others edit the repo."""
    copy = tmp_path_factory.mktemp("checkout") / "repo"
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".*_cache"),
    )
    # pyproject.toml names a README and install.sh copies a sample config; stand-ins keep the
    # test independent of whether those have been written yet.
    if not (copy / "README.md").exists():
        (copy / "README.md").write_text("# village-agent\n")
    sample = copy / "config" / "agent.yaml"
    if not sample.exists():
        sample.parent.mkdir(exist_ok=True)
        sample.write_text("site_id: test-site\n")
    return copy


@pytest.fixture(scope="module")
def installed(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staging root after one install, with secret files a technician put there first."""
    root = tmp_path_factory.mktemp("installed") / "root"
    (root / CONF).mkdir(parents=True)
    for name, mode in SECRETS.items():
        secret = root / CONF / name
        secret.write_text(f"{name} contents\n")
        secret.chmod(mode)
    with_this_interpreter(root)
    install(checkout, root)
    return root


@pytest.fixture
def root(installed: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the installed root for a test that changes it."""
    copy = tmp_path / "root"
    copy_tree(installed, copy)
    yield copy


def test_help_explains_the_options(checkout: Path) -> None:
    """--help exits 0 and names every option a technician may need."""
    result = subprocess.run(
        [str(checkout / "systemd" / "install.sh"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0
    for option in ("--root", "--uninstall", "--purge", "--python", "--pip-args"):
        assert option in result.stdout


def test_purge_alone_is_refused(checkout: Path, tmp_path: Path) -> None:
    """--purge without --uninstall fails instead of deleting anything."""
    result = subprocess.run(
        [str(checkout / "systemd" / "install.sh"), "--purge", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "--uninstall" in result.stderr


def test_creates_the_system_user_and_group(installed: Path) -> None:
    """sysusers.d config installed; passwd has a nologin system user homed in the state dir."""
    assert (installed / SYSUSERS).read_bytes() == (
        REPO / "systemd" / "village-agent.sysusers"
    ).read_bytes()
    entries = [line.split(":") for line in (installed / "etc" / "passwd").read_text().splitlines()]
    user = next(entry for entry in entries if entry[0] == NAME)
    assert int(user[3]) == gid_of(installed, NAME)
    assert user[5] == "/var/lib/village-agent"
    assert user[6].endswith("nologin")
    assert int(user[2]) < 1000


def test_installs_the_agent_in_a_relocated_venv(installed: Path) -> None:
    """The venv runs the checkout's version, and its scripts name /opt, not the staging root."""
    python = installed / VENV / "bin" / "python"
    version = subprocess.run(
        [str(python), "-I", "-c", "import agent; print(agent.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == agent.__version__

    script = (installed / VENV / "bin" / NAME).read_text()
    assert script.startswith("#!/opt/village-agent/bin/python")
    for path in (installed / VENV / "bin").iterdir():
        if path.is_file() and not path.is_symlink():
            assert str(installed) not in path.read_text(errors="replace"), path
    assert os.readlink(installed / COMMAND) == "/opt/village-agent/bin/village-agent"


def test_installs_the_sample_config_and_locks_down_secrets(installed: Path, checkout: Path) -> None:
    """agent.yaml comes from config/; it and every secret file end up 0640 root:village-agent."""
    gid = gid_of(installed, NAME)
    conf = installed / CONF
    assert (conf / "agent.yaml").read_bytes() == (checkout / "config" / "agent.yaml").read_bytes()
    st = conf.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 0, gid)
    for name in ["agent.yaml", *SECRETS]:
        st = (conf / name).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid), name
    assert (conf / "password").read_text() == "password contents\n"


def is_enabled(root: Path) -> str:
    return subprocess.run(
        ["systemctl", f"--root={root}", "is-enabled", "village-agent.service"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def test_the_unit_stays_disabled_while_the_config_is_the_sample(root: Path, checkout: Path) -> None:
    """With the sample agent.yaml the unit is installed but not enabled, so the card boots no
    made-up site, and the installer says what to do; once the config is edited, it is enabled."""
    unit = root / UNIT
    assert unit.read_bytes() == (REPO / "systemd" / "village-agent.service").read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert not (root / WANTS).is_symlink()
    assert is_enabled(root) == "disabled"
    again = install(checkout, root)
    assert "NOT enabled: /etc/village-agent/agent.yaml is still the sample" in again.stdout
    assert is_enabled(root) == "disabled"

    config = root / CONF / "agent.yaml"
    config.write_text(config.read_text().replace("kukar-tenggarong-01", "kukar-muara-02"))
    install(checkout, root)
    assert os.readlink(root / WANTS) == "/" + str(UNIT)
    assert is_enabled(root) == "enabled"


def test_refuses_a_root_without_this_interpreter(checkout: Path, tmp_path: Path) -> None:
    """A staging root lacking this machine's interpreter (another architecture, another build)
    is refused before anything is written: the venv built here could not start there."""
    root = tmp_path / "foreign"
    root.mkdir()
    result = subprocess.run(
        [str(checkout / "systemd" / "install.sh"), "--root", str(root), "--python", sys.executable],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "the gateway could not start it" in result.stderr
    assert str(Path(sys.executable).resolve()) in result.stderr
    assert list(root.iterdir()) == []


def test_creates_the_transfer_key_once(root: Path, checkout: Path) -> None:
    """transfer.key: 64 hex digits, 0640 root:village-agent, and never replaced by a re-run."""
    key = root / CONF / "transfer.key"
    text = key.read_text()
    assert len(text.strip()) == 64 and int(text, 16) > 0
    st = key.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid_of(root, NAME))
    install(checkout, root)
    assert key.read_text() == text


def test_dependencies_are_the_locked_versions(installed: Path) -> None:
    """The venv holds exactly the versions pinned (with hashes) in systemd/requirements.lock."""
    lock = (REPO / "systemd" / "requirements.lock").read_text()
    pins = dict(
        line.split(" ")[0].split("==")
        for line in lock.splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins and "--hash=sha256:" in lock
    found = subprocess.run(
        [str(installed / VENV / "bin" / "python"), "-I", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for name, version in pins.items():
        assert f"{name.lower()}=={version}" in found, (name, found)


def test_second_run_changes_nothing(root: Path, checkout: Path) -> None:
    """Re-running the installer leaves every path, mode, owner, size and mtime as it was."""
    before = listing(root)

    result = install(checkout, root)

    assert listing(root) == before
    assert "already has this version" in result.stdout


def test_existing_config_is_kept_but_its_permissions_fixed(root: Path, checkout: Path) -> None:
    """A technician's agent.yaml is never overwritten; a wrong mode on it is corrected."""
    config = root / CONF / "agent.yaml"
    config.write_text("site_id: edited-by-technician\n")
    config.chmod(0o600)

    result = install(checkout, root)

    assert config.read_text() == "site_id: edited-by-technician\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert "keeping the existing /etc/village-agent/agent.yaml" in result.stdout


def test_a_changed_checkout_is_reinstalled(root: Path, checkout: Path, tmp_path: Path) -> None:
    """A new version in the checkout replaces the installed one on the next run."""
    changed = tmp_path / "repo"
    shutil.copytree(checkout, changed, symlinks=True)
    init = changed / "agent" / "__init__.py"
    init.write_text(init.read_text().replace(agent.__version__, "99.0.0"))

    install(changed, root)

    version = subprocess.run(
        [str(root / VENV / "bin" / "python"), "-I", "-c", "import agent; print(agent.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "99.0.0"


def test_uninstall_keeps_config_and_state(root: Path, checkout: Path) -> None:
    """--uninstall removes venv, unit, boot link and command; config, secrets, state stay."""
    (root / STATE).mkdir(parents=True)
    (root / STATE / "buffer.sqlite").write_bytes(b"unsent readings")

    run_install(checkout, root, "--uninstall")

    for gone in (VENV, UNIT, WANTS, COMMAND):
        assert not (root / gone).exists() and not (root / gone).is_symlink(), gone
    for kept in (CONF / "agent.yaml", CONF / "client.key", STATE / "buffer.sqlite", SYSUSERS):
        assert (root / kept).exists(), kept
    assert f"{NAME}:" in (root / "etc" / "passwd").read_text()


def test_uninstall_twice_is_harmless(root: Path, checkout: Path) -> None:
    """A second --uninstall finds nothing to do and still succeeds."""
    run_install(checkout, root, "--uninstall")
    before = listing(root)

    run_install(checkout, root, "--uninstall")

    assert listing(root) == before


def test_purge_also_deletes_config_and_state(root: Path, checkout: Path) -> None:
    """--uninstall --purge deletes configuration, secrets and buffered readings too."""
    (root / STATE).mkdir(parents=True)
    (root / STATE / "buffer.sqlite").write_bytes(b"unsent readings")

    run_install(checkout, root, "--uninstall", "--purge")

    for gone in (VENV, UNIT, WANTS, COMMAND, CONF, STATE, SYSUSERS):
        assert not (root / gone).exists(), gone
