"""Try mmlsp here: `mmlsp complete examples/demo.py --line 7 --character 4` (0-based)."""


def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    
