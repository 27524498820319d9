"""The kernel model: one module per mm/ mechanism of Linux 6.12 (x86-64, 4 KiB pages)."""
