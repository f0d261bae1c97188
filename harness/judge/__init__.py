"""Judge: expectations x observation -> verdicts. Pure functions."""
