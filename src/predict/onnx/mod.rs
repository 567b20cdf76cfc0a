//! ONNX graphs run whole (in progress).
