"""Analysis: pure functions over recorded artifacts (pcaps, samples, step logs). No root needed."""
