"""Things that execute a model: NumPy forward passes, evaluation text and metrics (below the zoo)."""
