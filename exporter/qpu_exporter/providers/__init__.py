"""Providers: one package per provider (its config model, discovery, pricing and error
classes) behind ``base.Provider``; ``registry`` says which exist, ``factory`` builds them
from config. Importing this package registers the built-in providers."""

from . import braket, ibm, simulated  # noqa: F401 - each registers itself
