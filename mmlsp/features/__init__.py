"""LSP features: each module turns documents and settings into one kind of LSP result."""
