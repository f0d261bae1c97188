"""Recorders: tcpdump per interface and a socket-state sampler per host, all on one clock."""
