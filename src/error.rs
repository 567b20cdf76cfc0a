//! The crate's one error type.

/// Everything that can go wrong in `wgpu-gru`, with the numbers involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor or buffer has the wrong number of elements or the wrong shape.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which tensor or argument.
        what: String,
        /// The expected shape or length, as text (`[3, 128]`, `4096`).
        expected: String,
        /// The shape or length that was given.
        got: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An argument (lengths, sizes, options) is invalid.
    #[error("invalid argument {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// A weight tensor is missing from a file.
    #[error("missing tensor {name} ({context})")]
    MissingTensor {
        /// Tensor name that was looked for.
        name: String,
        /// The layout or file being read.
        context: String,
    },
    /// A tensor has a dtype this crate cannot read.
    #[error("unsupported dtype {dtype} for tensor {name}")]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// The weights' layout could not be recognised.
    #[error("unknown weight layout: {0}")]
    UnknownLayout(String),
    /// A file could not be parsed.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was being parsed (file name or format).
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// A size computation overflowed.
    #[error("size overflow computing {0}")]
    Overflow(String),
    /// No GPU adapter is available.
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    /// Requesting a device failed.
    #[error("cannot create GPU device: {0}")]
    RequestDevice(String),
    /// The problem exceeds a device limit and cannot be split.
    #[error("device limit exceeded: {what} needs {needed}, the device allows {limit}")]
    DeviceLimit {
        /// Which limit.
        what: String,
        /// What the problem needs.
        needed: u64,
        /// What the device allows.
        limit: u64,
    },
    /// The device ran out of memory (a buffer or pipeline could not be created).
    #[error("GPU out of memory: {0}")]
    GpuOutOfMemory(String),
    /// wgpu refused a call as invalid (a bug here, or a device that cannot run a kernel).
    #[error("GPU validation error: {0}")]
    GpuValidation(String),
    /// The device was lost (driver reset, `Device::destroy`, a removed GPU); make a new one.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Another wgpu failure: waiting, mapping, or an error that escaped every scope.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The feature is not supported on this path.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The device lacks a wgpu feature that the asked-for option needs.
    #[error(
        "{option} needs wgpu::Features::{feature}, which the device on {adapter} does not have"
    )]
    MissingFeature {
        /// The option, such as `Precision::F16Weights`.
        option: &'static str,
        /// The wgpu feature.
        feature: &'static str,
        /// The adapter's description.
        adapter: String,
    },
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a [`Error::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::ShapeMismatch {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
    /// Builds an [`Error::InvalidArgument`].
    pub fn arg(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
