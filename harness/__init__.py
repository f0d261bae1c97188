"""tcp-testbed: run TCP experiments on real Linux kernels and judge them against expectations.

Pipeline (one module folder per stage): load -> plan -> targets/lab -> record -> drive ->
analyse -> judge -> report.
"""
