//! Keras `.keras` and legacy `.h5` model files (in progress).
