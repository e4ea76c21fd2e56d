"""How the workflow's Snakemake process stops when it is interrupted, so that a rerun resumes.

Snakemake itself stops cleanly on Ctrl-C (SIGINT: running jobs are cancelled, their outputs
removed, the working directory unlocked) and on SIGTERM (running jobs finish first). A hangup
(SIGHUP: the terminal was closed or the SSH connection dropped) kills it on the spot instead: the
working directory stays locked and the next run refuses to start until ``snakemake --unlock``.
:func:`stop_on_hangup_like_ctrl_c` makes a hangup stop Snakemake the way Ctrl-C does.
"""

from __future__ import annotations

import signal
import threading


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_hangup_like_ctrl_c() -> bool:
    """Raise ``KeyboardInterrupt`` (what Ctrl-C raises) on SIGHUP; True if the handler is set.

    Nothing changes where there is no SIGHUP (Windows), outside the main thread (where Python
    cannot set handlers), or when SIGHUP is not at its default: a run started with ``nohup``
    keeps ignoring hangups.
    """
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None or threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(hangup) is not signal.SIG_DFL:
        return False
    signal.signal(hangup, _interrupt)
    return True
