"""Human output on stdout, warnings on stderr, and the libraries' chatter turned down to match."""

from __future__ import annotations

import sys
import warnings

_quiet = False
_silent = False  # a non-zero rank of a multi-process launch: rank 0 speaks for all


def set_quiet(quiet: bool) -> None:
    """Quiet mode: no progress bars or info lines; warnings and errors still go to stderr."""
    global _quiet
    _quiet = quiet
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()  # load reports are ours to summarise, not to dump
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if quiet:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    else:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()


def set_silent() -> None:
    """Nothing at all from this process (quiet, and no results or warnings either)."""
    global _silent
    _silent = True
    set_quiet(True)


def info(message: str) -> None:
    """A line for the human at the terminal (suppressed by --quiet)."""
    if not _quiet and not _silent:
        print(message, flush=True)


def result(message: str) -> None:
    """A result line (final scores, tables): printed even with --quiet."""
    if not _silent:
        print(message, flush=True)


def warn(message: str) -> None:
    """A warning line on stderr (never suppressed, except on the silent ranks of a multi-process run)."""
    if not _silent:
        print(f"warning: {message}", file=sys.stderr, flush=True)
