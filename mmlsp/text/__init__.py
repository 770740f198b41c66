"""Text: LSP positions and offsets, and applying content changes to a document."""
