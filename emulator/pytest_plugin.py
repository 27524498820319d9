"""pytest plugin (entry point ``mmemu``): fixtures for test suites written against mmemu."""
