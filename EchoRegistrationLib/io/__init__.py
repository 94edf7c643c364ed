"""Reading and writing echo sequences (see :mod:`EchoRegistrationLib.io.dispatch`)."""
