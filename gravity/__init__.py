"""gravity: a JAX toy-model simulator of the gravitational reading of fine-tuning reversion."""

__version__ = "0.1.0"
