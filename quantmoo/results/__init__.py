"""Search results: SearchResult, the result-file contract, plots."""
from .result import SearchResult, Solution, load_result

__all__ = ["SearchResult", "Solution", "load_result"]
