"""The engines that compute the same NTM as the reference (ntm_ref/model.py) sooner: for speed, not for
reading. ``fast`` regroups the work of one run (one product for all heads, work hoisted out of the time
loop, buffers kept between calls); ``parallel`` runs ``fast`` on parts of the batch in worker processes.
Both are checked against the reference to rtol 1e-10 (tests/test_fast.py, tests/test_parallel.py).
NTM(config, engine="fast") or engine="parallel" selects them; the default is the reference.
"""
