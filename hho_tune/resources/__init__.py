"""Packaged resources: MNIST in Keras's layout (see README.md in this folder for its attribution)."""
