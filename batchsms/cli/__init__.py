"""The ``batchsms`` command: a thin shell over the library (only it prints or exits)."""
