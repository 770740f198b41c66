"""Prompts: fill-in-the-middle templates, cross-file snippets, docstring skeletons."""
