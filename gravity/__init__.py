"""gravity: a JAX toy-model simulator of the gravitational reading of fine-tuning reversion.

Importing the package registers the built-in defences (`gravity.defences`), so the engine, which
only knows the Defence protocol and its registry, finds them by name."""

__version__ = "0.1.0"

from gravity import defences  # noqa: E402,F401  (registers the built-in defences)
