"""Pure decision functions: plain data in, plain data out, no cluster.

Everything that decides whether an object is valid, unique, within quota or
ready lives here, so that the admission webhook and the reconciler share one
code path and the unit tests need no API server.
"""
