"""The paper's tasks (copy, repeat copy, associative recall, N-grams, priority sort).

Filled in by the tasks issue; the package exists now so the layout is fixed.
"""
