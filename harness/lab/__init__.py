"""Lab: the only stage that builds and tears down kernel network state (Mininet, tc, sysctl)."""
