"""Every exit status `village-agent` gives, in one place: sysexits.h (`os.EX_*`) where one fits.

The systemd unit, the README and the tests read these numbers; nothing else defines one.

    run            0 stopped cleanly, 70 buffer unusable, 73 state_dir unusable,
                   75 another agent holds state_dir, 78 config invalid (no restart)
    once           0 measured, 70 speed test could not run, 78 config invalid (also: --speedtest
                   without speedtest.url_download); with --publish: 0 acknowledged, 69 broker
                   unreachable or no PUBACK in time, 77 broker refused the login or the data,
                   75 the daemon holds state_dir, 70 buffer unusable
    any command    141 stdout was closed by its reader (`| head`)
    diag           0 nothing failed (warnings allowed), 1 a check failed, 78 config invalid
    status         0 the daemon runs, 3 it does not (LSB "not running"), 78 config invalid
    buffer export  0 written, 66 no buffer in state_dir, 74 buffer unreadable, 73 cannot write FILE,
                   78 no usable transfer key
    buffer import  0 all delivered, 65 not a valid signed export of this site (nothing sent),
                   78 no usable transfer key, 69 broker unreachable/no progress,
                   77 broker refused the login or a message, 130 interrupted (run again to resume)
"""

from __future__ import annotations

import os

EX_OK = os.EX_OK
EX_CHECK_FAILED = 1  # diag: a check failed
EX_NOT_RUNNING = 3  # LSB's "program is not running", as `systemctl status` uses it
EX_DATAERR = os.EX_DATAERR  # 65
EX_NOINPUT = os.EX_NOINPUT  # 66
EX_UNAVAILABLE = os.EX_UNAVAILABLE  # 69
EX_SOFTWARE = os.EX_SOFTWARE  # 70: the buffer cannot be used
EX_CANTCREAT = os.EX_CANTCREAT  # 73
EX_IOERR = os.EX_IOERR  # 74
EX_TEMPFAIL = os.EX_TEMPFAIL  # 75: another agent holds the state directory
EX_NOPERM = os.EX_NOPERM  # 77
EX_CONFIG = os.EX_CONFIG  # 78: the unit's RestartPreventExitStatus keeps systemd from looping
EX_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EX_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`diag | head`)
