"""The LSP side: the handler table (``server``) and the wire (``transport``)."""
