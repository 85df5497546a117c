"""The model core: the model store, graph derivation, per-frame kernels, runtimes and backends,
the engine and its streams, and the registry of models. Nothing here imports the library or faces."""

__all__ = ()  # the core has no names of its own: its modules are its interface
