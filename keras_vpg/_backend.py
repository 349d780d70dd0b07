"""Which Keras backend to run on, decided before Keras is imported (no Keras import here).

Keras reads its backend once, at its first import: ``KERAS_BACKEND``, else the
``"backend"`` of ``keras.json`` (``$KERAS_HOME`` or ``~/.keras``), else
TensorFlow. Keras also writes a ``keras.json`` saying ``"tensorflow"`` the first
time it runs, so after ``pip install "keras-vpg[jax]"`` the configured backend
is usually one that is not installed. :func:`resolve_backend` makes the choice
and :func:`ensure_backend` applies it:

1. ``--backend`` of the command line (it sets ``KERAS_BACKEND`` for the run), else
   ``KERAS_BACKEND``: an explicit request. If that backend is not installed,
   :class:`BackendNotInstalled` names the extra to install.
2. ``keras.json``, else Keras's default (TensorFlow): if that backend is not
   installed, the first installed one of :data:`FALLBACK_ORDER` is used instead,
   with a one-line notice on stderr. This fallback (it sets ``KERAS_BACKEND``) is
   the only change keras-vpg makes to the process, and only when Keras is not yet
   imported and would otherwise fail to import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from dataclasses import dataclass

#: The Keras backends keras-vpg trains on.
BACKENDS = ("tensorflow", "jax", "torch")
#: Tried in this order when the configured backend is not installed.
FALLBACK_ORDER = ("jax", "torch", "tensorflow")
#: Keras's own default when neither KERAS_BACKEND nor keras.json says anything.
KERAS_DEFAULT = "tensorflow"


class BackendNotInstalled(ImportError):
    """An explicitly requested Keras backend cannot be imported."""


def install_hint(backend: str) -> str:
    """The pip command that installs ``backend`` for keras-vpg."""
    return f'pip install "keras-vpg[{backend}]"'


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def keras_json_path() -> str:
    """Where Keras reads ``keras.json``: ``$KERAS_HOME``, else ``~/.keras``.

    (``/tmp/.keras`` when the home directory is not writable, as Keras does.)
    """
    if "KERAS_HOME" in os.environ:
        return os.path.join(os.environ["KERAS_HOME"], "keras.json")
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras", "keras.json")


def keras_json_backend() -> str | None:
    """The ``"backend"`` of ``keras.json``, or ``None`` (no file, unreadable, no entry)."""
    try:
        with open(keras_json_path()) as file:
            backend = json.load(file).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return backend or None


@dataclass(frozen=True)
class BackendChoice:
    """The outcome of :func:`resolve_backend`.

    Attributes
    ----------
    backend : str
        The backend Keras will run on.
    source : str
        Where it came from: ``"--backend"``, ``"KERAS_BACKEND"``, ``"keras.json"``,
        ``"Keras's default"`` or ``"fallback"``.
    notice : str or None
        One line for stderr when the configured backend was replaced.
    """

    backend: str
    source: str
    notice: str | None = None


def resolve_backend(flag: str | None = None) -> BackendChoice:
    """Decide the backend (see the module docstring); changes nothing.

    Parameters
    ----------
    flag : str, optional
        The command line's ``--backend`` (wins over ``KERAS_BACKEND``, as a flag
        given for this run is the more specific request).

    Raises
    ------
    BackendNotInstalled
        When the flag or ``KERAS_BACKEND`` names one of :data:`BACKENDS` that is not installed.
    """
    env_value = os.environ.get("KERAS_BACKEND") or None
    for requested, source in ((flag, "--backend"), (env_value, "KERAS_BACKEND")):
        if requested is None:
            continue
        if requested in BACKENDS and not is_installed(requested):
            raise BackendNotInstalled(f"the {requested} backend ({source}={requested}) is not "
                                      f"installed: {install_hint(requested)}")
        return BackendChoice(requested, source)
    configured = keras_json_backend()
    source = "keras.json" if configured else "Keras's default"
    configured = configured or KERAS_DEFAULT
    if configured not in BACKENDS or is_installed(configured):
        return BackendChoice(configured, source)
    for candidate in FALLBACK_ORDER:
        if is_installed(candidate):
            where = keras_json_path() if source == "keras.json" else "Keras's default"
            notice = (f"keras-vpg: the {configured} backend ({where}) is not installed; "
                      f"using {candidate} (set KERAS_BACKEND or --backend to choose)")
            return BackendChoice(candidate, "fallback", notice)
    raise BackendNotInstalled(
        f"no Keras backend is installed: {install_hint('jax')} (or torch, tensorflow)")


def apply_backend(flag: str | None = None) -> BackendChoice:
    """Apply :func:`resolve_backend` before Keras is imported, printing nothing.

    Sets ``KERAS_BACKEND`` only for ``flag`` or a fallback. Once Keras is imported
    its backend is fixed: then this returns it and changes nothing (a different
    ``flag`` raises ``RuntimeError``). The command line uses this and says which
    backend it trains on in its own output; :func:`ensure_backend` prints the notice.
    """
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if flag and flag != current:
            raise RuntimeError(
                f"Keras is already imported on the {current} backend; the {flag} backend "
                "must be chosen before Keras is imported (set KERAS_BACKEND)")
        return BackendChoice(current, "imported")
    choice = resolve_backend(flag)
    if choice.source in ("--backend", "fallback"):
        os.environ["KERAS_BACKEND"] = choice.backend
    return choice


def ensure_backend(flag: str | None = None) -> str:
    """:func:`apply_backend`, with the fallback's notice on stderr; return the backend."""
    choice = apply_backend(flag)
    if choice.notice:
        print(choice.notice, file=sys.stderr)
    return choice.backend


# -- TensorFlow's start-up lines ------------------------------------------------------------
#: Lines TensorFlow's native code prints on stderr while it is imported, whatever
#: TF_CPP_MIN_LOG_LEVEL says (absl logs them before its log level is read).
TENSORFLOW_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cu",  # cuDNN / cuFFT / cuBLAS factories
    "TF-TRT Warning",
    "computation placer already registered",
)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``tensorflow`` as usual, but with file descriptor 2 captured; replays all
    but the noise.

    As a finder it finds ``tensorflow``'s spec as usual and makes itself the spec's loader
    (keeping the spec's own one in ``self.loader``, which it runs). It stays until
    TensorFlow is imported: a mere ``importlib.util.find_spec`` (an "is it installed?")
    also lands here.
    """

    loader: importlib.abc.Loader  # the found spec's own loader

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or "tensorflow" in sys.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            self.loader = spec.loader
            spec.loader = self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        import tempfile

        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            # Only the first import of TensorFlow is captured: the finder goes.
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, type(self))]
            try:
                module.__spec__.loader = module.__loader__ = self.loader
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().decode(errors="replace").splitlines()
                        if not any(noise in line for noise in TENSORFLOW_STARTUP_NOISE)]
                if kept:  # anything else (a real warning, an import error) is shown
                    print("\n".join(kept), file=sys.stderr)


def quiet_tensorflow_startup() -> None:
    """Keep TensorFlow's start-up lines off stderr when it is first imported.

    Keras imports TensorFlow whenever it is installed, on every backend (e.g.
    ``keras.utils.set_random_seed`` seeds it too), and its native code then prints
    lines such as ``oneDNN custom operations are on`` that no environment variable
    turns off. For the command line only (importing keras_vpg changes nothing):
    during that one import, stderr goes to a temporary file and every line but
    :data:`TENSORFLOW_STARTUP_NOISE` is printed back. A no-op once TensorFlow is
    imported or when it is not installed.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later C++ log lines
    if "tensorflow" in sys.modules or not is_installed("tensorflow"):
        return
    if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
