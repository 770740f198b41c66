"""What the user does with suggestions, kept on their machine: the event store
(``store``, SQLite under the cache directory), the model's confidence in a suggestion
and the gate that hides the ones unlikely to be accepted (``gate``), and the report
``mmlsp stats`` prints and plots (``report``). Nothing here sends anything anywhere.
"""
