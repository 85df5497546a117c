"""The measurement scripts: every figure in the docs comes from one of them.

Run each from the repository root as a module, ``.venv/bin/python -m bench.quality`` (so that
``bench`` and ``tests`` import as packages: a script takes the test suite's real samples from
:mod:`tests.samples`, and the tests reuse scripts such as :mod:`bench.load`, with no
``sys.path`` edits on either side).
"""
