"""Context: what the model is shown besides the cursor's line: the text around
the cursor, fitted to a budget, and the workspace's definitions."""
