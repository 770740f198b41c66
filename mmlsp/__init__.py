"""mmlsp: a language server for AI code completion from a locally hosted model."""

__version__ = "0.1.0"
