"""/proc files: rendering the kernel's text formats (mm/vmstat.c) and parsing them back."""
