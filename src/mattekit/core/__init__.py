"""The model core: everything between an RGB array and its matte. Nothing here imports the
library or the faces. One module per concept::

    models/     the registry of models (MODELS), one module each: rvm (people), isnet (any subject)
    store       ModelStore: a model's pinned file, fetched, verified and cached the same way for all
    derive      RVM's low-resolution network cut from the graph into its parts (backbone,
                recurrent, output) and the sub-models made of them, cached by name
    passes      the size of the low-resolution pass (pass_ratio, pass_size): decided only here
    kernels     per-frame numpy/OpenCV work: the model's downsample, the full-resolution tail,
                the foreground in alpha's partial band
    runtime     ONNX Runtime: device, providers, session options, the shared memory arena
    backends/   the runtimes of RVM's sub-models (BACKENDS), one module each
    engine      Engine: RVM, one method per part, carrying the recurrent state
    streams     MatteStream, the one interface of a video's frames through a model; Stream and
                StagedStream (the three parts as overlapping stages)
    route       subject=auto: does RVM's matte show a person?
    lazy        the one kind of process-wide instance (an engine per model)

A second model is one module in ``models/`` and one row in ``MODELS``; a new backend one module
in ``backends/`` and one row in ``BACKENDS`` (docs/extending.md).
"""

__all__ = ()  # the core has no names of its own: its modules are its interface
