#!/usr/bin/env bash
# Install village-agent from the repository checkout this script lives in.
# Run `systemd/install.sh --help` for usage.
set -euo pipefail

readonly NAME=village-agent
readonly VENV_PATH=/opt/village-agent
readonly CONF_PATH=/etc/village-agent
readonly STATE_PATH=/var/lib/village-agent
# /usr/local is where systemd and sysusers look for software that no .deb owns,
# so a later `apt` run neither overwrites nor removes these files.
readonly UNIT_PATH=/usr/local/lib/systemd/system/village-agent.service
readonly SYSUSERS_PATH=/usr/local/lib/sysusers.d/village-agent.conf
readonly WANTS_PATH=/etc/systemd/system/multi-user.target.wants/village-agent.service
# On PATH for the technician (`village-agent status`, `village-agent diag`).
readonly COMMAND_LINK=/usr/local/bin/village-agent
readonly STAMP_NAME=.village-agent-source.sha256

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(dirname -- "$SCRIPT_DIR")
readonly SCRIPT_DIR REPO_DIR

usage() {
    cat <<EOF
Usage: $0 [--root DIR] [--python PATH] [--pip-args ARGS]
       $0 --uninstall [--purge] [--root DIR]

Installs village-agent from this checkout ($REPO_DIR):
  - a Python virtual environment with the agent in $VENV_PATH, and the
    command $COMMAND_LINK
  - the system user and group '$NAME' (systemd-sysusers)
  - $CONF_PATH/agent.yaml from config/agent.yaml, only if there is none yet:
    an existing configuration is never overwritten
  - $CONF_PATH/transfer.key, the site's secret that signs 'buffer export'
    files, only if there is none yet; give the provincial office a copy
  - owner root:$NAME and mode 0640 on every file in $CONF_PATH
    (agent.yaml, password, client.key, CA file), so only the service reads them
  - the unit village-agent.service, enabled at boot once agent.yaml is no longer
    the sample (until then it stays disabled: run this script again after
    editing, or: systemctl enable --now $NAME); on a running system it is
    (re)started as well
  - the agent's dependencies at the tested versions, checked against the hashes
    in systemd/requirements.lock

Running it again is safe: what is already in place is left untouched.

Options:
  --root DIR        install into a staging root (an SD card image being
                    prepared) instead of this system; nothing is started.
                    The virtual environment runs on the target only if DIR
                    has this very interpreter (same path, same binary: same
                    architecture and build); otherwise the script refuses:
                    prepare the image on a machine like the gateway, or run
                    this script on the gateway itself
  --python PATH     Python 3.11 or newer for the virtual environment
                    (default: python3)
  --pip-args ARGS   extra arguments for 'pip install', e.g. "--no-deps"
  --uninstall       stop and disable the service, remove the unit and
                    $VENV_PATH; configuration and buffered readings in
                    $STATE_PATH are kept
  --purge           with --uninstall: also delete $CONF_PATH and $STATE_PATH
                    (readings not yet sent are lost)
  -h, --help        show this help

Needs root. Debian / Raspberry Pi OS: sudo apt install python3-venv
EOF
}

say() { printf '%s: %s\n' "$NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$NAME" "$*" >&2
    exit 1
}

invoked_as="$0 $*"
root=/
action=install
purge=0
python=python3
pip_args=""

while (($# > 0)); do
    case $1 in
        --root) root=${2:?"--root needs a directory"}; shift 2 ;;
        --root=*) root=${1#*=}; shift ;;
        --python) python=${2:?"--python needs a path"}; shift 2 ;;
        --python=*) python=${1#*=}; shift ;;
        --pip-args) pip_args=${2?"--pip-args needs a value"}; shift 2 ;;
        --pip-args=*) pip_args=${1#*=}; shift ;;
        --uninstall) action=uninstall; shift ;;
        --purge) purge=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if ((purge)) && [[ $action != uninstall ]]; then
    die "--purge deletes the configuration and unsent readings; it only works together with --uninstall"
fi
((EUID == 0)) || die "must run as root (it creates a system user and installs a service): sudo $invoked_as"

root=$(realpath -m -- "$root")
# Every target path is "$R/..."; R is empty for the running system.
R=${root%/}
# Only a running systemd on this very root can be reloaded and asked to start the service.
live=0
if [[ -z $R && -d /run/systemd/system ]]; then
    live=1
fi
readonly root R live

umask 022
workdir=$(mktemp -d)
trap 'rm -rf -- "$workdir"' EXIT

# Copy src to dst (root-owned, given mode) only if the content or mode differs, so that an
# unchanged file keeps its mtime. Sets changed=1 when it wrote the file, else changed=0.
install_if_changed() {
    local src=$1 dst=$2 mode=$3
    changed=0
    if [[ -f $dst ]] && cmp -s -- "$src" "$dst" && [[ $(stat -c '%a %u %g' -- "$dst") == "$mode 0 0" ]]; then
        return 0
    fi
    install -D -m "$mode" -o 0 -g 0 -- "$src" "$dst" || die "could not write $dst"
    changed=1
}

# Make a file or directory root:<the service's group> with the given mode, touching it only when
# that differs. The group goes by number: in a staging root the name means nothing to chown.
ensure_root_group_mode() {
    local path=$1 gid=$2 mode=$3
    if [[ $(stat -c '%u %g %a' -- "$path") != "0 $gid $mode" ]]; then
        chown "0:$gid" -- "$path"
        chmod "$mode" -- "$path"
        say "set ${path#"$R"} to mode $mode, owner root:$NAME"
    fi
}

group_gid() {
    awk -F: -v name="$NAME" '$1 == name { print $3 }' "$R/etc/group" 2>/dev/null || true
}

account_exists() {
    grep -q "^$NAME:" "$R/etc/passwd" 2>/dev/null && [[ -n $(group_gid) ]]
}

create_account() {
    install_if_changed "$SCRIPT_DIR/village-agent.sysusers" "$R$SYSUSERS_PATH" 644
    if ((changed)); then
        say "installed $SYSUSERS_PATH"
    fi
    if account_exists; then
        return
    fi
    mkdir -p -- "$R/etc"
    systemd-sysusers --root="$root" "$R$SYSUSERS_PATH" \
        || die "could not create the '$NAME' user with systemd-sysusers"
    account_exists || die "systemd-sysusers ran but '$NAME' is not in $R/etc/passwd and $R/etc/group"
    say "created system user and group '$NAME'"
}

check_python() {
    command -v -- "$python" >/dev/null \
        || die "no '$python' found; install Python 3.11 or newer (sudo apt install python3 python3-venv)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is older than 3.11; village-agent needs Python 3.11 or newer"
}

# A fingerprint of what would be installed, so an unchanged checkout is not reinstalled (pip
# rebuilds and reinstalls a local directory every time, rewriting files that did not change).
source_fingerprint() {
    local src=$1
    {
        "$python" -c 'import sys; print(sys.version)'
        printf 'pip-args: %s\n' "$pip_args"
        (cd -- "$src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

# A venv records its own absolute path in its scripts and activate files. Installed into a
# staging root, those must name the path the venv will have on the gateway.
relocate_venv() {
    local staged=$1 final=$2 file
    [[ $staged == "$final" ]] && return
    for file in "$staged"/bin/* "$staged/pyvenv.cfg"; do
        if [[ -f $file && ! -L $file ]] && grep -qF -- "$staged" "$file"; then
            STAGED=$staged FINAL=$final "$staged/bin/python" -c '
import os, sys
path = sys.argv[1]
with open(path, "rb") as f:
    data = f.read()
data = data.replace(os.environ["STAGED"].encode(), os.environ["FINAL"].encode())
with open(path, "wb") as f:
    f.write(data)
' "$file"
        fi
    done
}

# In a staging root the venv must run with the target's interpreter: a venv holds the absolute
# path of the interpreter it was made with (pyvenv.cfg `home`) and compiled modules for this
# machine's architecture. Refuse unless DIR has the very same interpreter at the same path.
check_target_python() {
    [[ -n $R ]] || return 0
    local here stdlib
    here=$(realpath -- "$(command -v -- "$python")")
    stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    if [[ ! -e $R$here ]] || ! cmp -s -- "$here" "$R$here" || [[ ! -e $R$stdlib/os.py ]]; then
        die "--root $root: the virtual environment would be built with $here ($(uname -m)), and $root has no identical $here with its standard library, so the gateway could not start it. Prepare the image on a machine of the gateway's architecture and OS (e.g. a Raspberry Pi with Raspberry Pi OS bookworm), or run this script on the gateway itself"
    fi
}

# Sets package_changed=1 when pip installed anything.
install_venv() {
    local venv=$R$VENV_PATH src=$workdir/src fingerprint
    package_changed=0
    local -a extra=()
    read -r -a extra <<<"$pip_args"

    if [[ -e $venv ]] && ! "$venv/bin/python" -c '' 2>/dev/null; then
        # The interpreter the venv was built on is gone (an OS upgrade replaced Python).
        say "the virtual environment in $VENV_PATH no longer runs; rebuilding it"
        rm -rf -- "$venv"
    fi
    if [[ ! -e $venv ]]; then
        say "creating a Python virtual environment in $VENV_PATH"
        "$python" -m venv -- "$venv" \
            || die "could not create the virtual environment; on Debian / Raspberry Pi OS run: sudo apt install python3-venv"
    fi

    # Build from a copy: pip writes build files into the source tree, and the checkout may be
    # read-only or belong to the technician.
    mkdir -p -- "$src"
    tar -C "$REPO_DIR" -cf - \
        --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
        --exclude=.mypy_cache --exclude=.ruff_cache . | tar -C "$src" -xf -
    fingerprint=$(source_fingerprint "$src")
    if [[ -f $venv/$STAMP_NAME && $(<"$venv/$STAMP_NAME") == "$fingerprint" ]]; then
        say "$VENV_PATH already has this version of the agent"
        return 0
    fi

    say "installing the agent into $VENV_PATH (downloads dependencies unless they are present; on a slow link this takes minutes)"
    # The dependencies at the versions the tests passed with, each file checked against its hash
    # (a gateway installed next year must not get untested releases), then the agent alone.
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
        --require-hashes "${extra[@]}" -r "$src/systemd/requirements.lock" \
        || die "pip install of the locked dependencies failed (see above). Check the internet connection, or that PyPI is reachable, then run this script again"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
        --no-deps "${extra[@]}" -- "$src" \
        || die "pip install failed (see above). Check the internet connection, or that piwheels/PyPI is reachable, then run this script again"
    relocate_venv "$venv" "$VENV_PATH"
    printf '%s\n' "$fingerprint" >"$venv/$STAMP_NAME"
    package_changed=1
    say "installed $("$venv/bin/python" -c 'import agent; print("village-agent", agent.__version__)')"
}

# Sets config_fresh=1 when agent.yaml was just copied from the sample.
install_config() {
    local conf=$R$CONF_PATH gid file
    config_fresh=0
    gid=$(group_gid)
    mkdir -p -- "$conf"
    ensure_root_group_mode "$conf" "$gid" 750

    if [[ -e $conf/agent.yaml || -L $conf/agent.yaml ]]; then
        say "keeping the existing $CONF_PATH/agent.yaml (never overwritten)"
    elif [[ -f $REPO_DIR/config/agent.yaml ]]; then
        install -m 0640 -o 0 -g "$gid" -- "$REPO_DIR/config/agent.yaml" "$conf/agent.yaml"
        config_fresh=1
        say "installed the sample $CONF_PATH/agent.yaml: set the site id and broker in it"
    else
        warn "no config/agent.yaml in $REPO_DIR; write $CONF_PATH/agent.yaml before starting the service"
    fi

    # The site's transfer key signs `buffer export` files; the provincial office checks them with
    # its copy. Made once, never replaced: files already exported stay verifiable.
    if [[ ! -e $conf/transfer.key && ! -L $conf/transfer.key ]]; then
        (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$conf/transfer.key" && echo >>"$conf/transfer.key") \
            || die "could not create $CONF_PATH/transfer.key"
        say "created $CONF_PATH/transfer.key: give the provincial office a copy, it checks this site's export files with it"
    fi

    # Secrets (password, client.key, CA file, transfer.key) sit next to agent.yaml: readable by root and the
    # service's group only, whatever mode they were copied with.
    for file in "$conf"/* "$conf"/.[!.]*; do
        [[ -e $file || -L $file ]] || continue
        if [[ -L $file ]]; then
            say "left ${file#"$R"} alone: it is a symlink; make sure its target is readable by group $NAME"
        elif [[ -f $file ]]; then
            ensure_root_group_mode "$file" "$gid" 640
        fi
    done
}

link_command() {
    local link=$R$COMMAND_LINK target=$VENV_PATH/bin/$NAME
    if [[ -L $link && $(readlink -- "$link") == "$target" ]]; then
        return 0
    fi
    if [[ -e $link || -L $link ]]; then
        warn "$COMMAND_LINK already exists and is not ours; left alone (the command is $target)"
        return 0
    fi
    mkdir -p -- "$(dirname -- "$link")"
    ln -s -- "$target" "$link"
    say "linked $COMMAND_LINK -> $target"
}

# Whether agent.yaml is still the sample: enabled at boot, it would run a made-up site, and a
# later site_id change would meet its buffer (exit 70) in a restart loop.
config_is_sample() {
    [[ -f $REPO_DIR/config/agent.yaml ]] && cmp -s -- "$REPO_DIR/config/agent.yaml" "$R$CONF_PATH/agent.yaml"
}

enable_unit() {
    local unit_changed=$1 package_changed=$2
    if config_is_sample; then
        if ((live)); then
            ((unit_changed)) && systemctl daemon-reload
        fi
        say "NOT enabled: $CONF_PATH/agent.yaml is still the sample. Edit it, check it with"
        say "  $NAME config check $CONF_PATH/agent.yaml"
        say "then run this script again, or: systemctl enable --now $NAME"
        return 0
    fi
    if ((live)); then
        if ((unit_changed)); then
            systemctl daemon-reload
        fi
        if ! systemctl is-enabled --quiet "$NAME.service"; then
            systemctl enable --quiet "$NAME.service"
            say "enabled $NAME.service at boot"
        fi
        if ((config_fresh)); then
            # The sample names no real site or broker; running it would only report a made-up site.
            say "not starting yet: edit $CONF_PATH/agent.yaml first, then: systemctl start $NAME"
        elif ((unit_changed || package_changed)) || ! systemctl is-active --quiet "$NAME.service"; then
            say "restarting $NAME.service"
            systemctl restart "$NAME.service" \
                || warn "the service did not start; see: journalctl -u $NAME -n 50 (exit status 78 means agent.yaml has errors)"
        fi
    else
        if ! systemctl --root="$root" is-enabled --quiet "$NAME.service" 2>/dev/null; then
            systemctl --root="$root" enable --quiet "$NAME.service"
            say "enabled $NAME.service at boot in $root"
        fi
    fi
}

do_install() {
    local unit_changed
    check_python
    command -v systemd-sysusers >/dev/null || die "systemd-sysusers not found; this needs systemd (Debian 12 / Raspberry Pi OS bookworm)"
    [[ -f $REPO_DIR/pyproject.toml ]] || die "$REPO_DIR does not look like a village-agent checkout (no pyproject.toml)"

    check_target_python
    [[ -f $REPO_DIR/systemd/requirements.lock ]] || die "$REPO_DIR has no systemd/requirements.lock (the tested dependency versions)"

    say "installing into ${root}"
    create_account
    install_venv
    link_command
    install_config
    install_if_changed "$SCRIPT_DIR/village-agent.service" "$R$UNIT_PATH" 644
    unit_changed=$changed
    if ((unit_changed)); then
        say "installed $UNIT_PATH"
    fi
    enable_unit "$unit_changed" "$package_changed"

    say "done. Next steps:"
    say "  edit $CONF_PATH/agent.yaml, then check it: $NAME config check $CONF_PATH/agent.yaml"
    if ((live)); then
        say "  systemctl restart $NAME; systemctl status $NAME; journalctl -u $NAME -f"
    fi
}

do_uninstall() {
    say "uninstalling from ${root}"
    if ((live)); then
        if systemctl is-active --quiet "$NAME.service" || systemctl is-enabled --quiet "$NAME.service" 2>/dev/null; then
            systemctl disable --now --quiet "$NAME.service" || warn "could not stop or disable $NAME.service"
            say "stopped and disabled $NAME.service"
        fi
    elif [[ -e $R$UNIT_PATH ]] && systemctl --root="$root" is-enabled --quiet "$NAME.service" 2>/dev/null; then
        systemctl --root="$root" disable --quiet "$NAME.service" || warn "could not disable $NAME.service in $root"
        say "disabled $NAME.service in $root"
    fi
    # Left behind if the unit file was removed by hand before.
    if [[ -L $R$WANTS_PATH ]]; then
        rm -f -- "$R$WANTS_PATH"
        rmdir --ignore-fail-on-non-empty -- "$(dirname -- "$R$WANTS_PATH")"
    fi
    if [[ -e $R$UNIT_PATH ]]; then
        rm -f -- "$R$UNIT_PATH"
        say "removed $UNIT_PATH"
        if ((live)); then
            systemctl daemon-reload
            systemctl reset-failed "$NAME.service" 2>/dev/null || true
        fi
    fi
    if [[ -L $R$COMMAND_LINK && $(readlink -- "$R$COMMAND_LINK") == "$VENV_PATH/bin/$NAME" ]]; then
        rm -f -- "$R$COMMAND_LINK"
        say "removed $COMMAND_LINK"
    fi
    if [[ -e $R$VENV_PATH ]]; then
        rm -rf -- "$R$VENV_PATH"
        say "removed $VENV_PATH"
    fi

    if ((purge)); then
        rm -rf -- "$R$CONF_PATH" "$R$STATE_PATH"
        rm -f -- "$R$SYSUSERS_PATH"
        say "deleted $CONF_PATH and $STATE_PATH"
        # Deleting a system account would let its UID be handed to another service, which
        # would then own whatever files of ours survive elsewhere (backups, SD card images).
        say "the system user '$NAME' is kept on purpose; remove it by hand if you must: userdel $NAME"
    else
        say "kept $CONF_PATH (configuration, secrets) and $STATE_PATH (unsent readings); --purge deletes them"
    fi
}

case $action in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac
