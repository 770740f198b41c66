"""A tiny module to try mmlsp on: `mmlsp complete examples/demo.py --line 8 --character 4`."""


def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    
