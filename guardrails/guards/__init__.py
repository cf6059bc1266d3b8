"""The guards: one module per guard, each pure (requests in, Verdict out) on the shared core."""
