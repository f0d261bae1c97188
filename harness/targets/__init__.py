"""Targets: where a run happens — this kernel (local) or a kernel booted under QEMU (vm)."""
