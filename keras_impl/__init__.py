"""The DCGAN in Keras 3 (TensorFlow backend), twin of the NumPy code in ``scratch``."""
