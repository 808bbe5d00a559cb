//! How a GPU backend is opened: which device, where device time goes, how
//! the resolver polls.

use super::resolver::ResolverOptions;

/// Options for [`GpuBackend::try_with`](super::GpuBackend::try_with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuConfig {
    /// The CUDA device's ordinal (0: the first).
    pub device: usize,
    /// The span field device time is recorded in: the subscriber's
    /// [`Conventions::device_time_field`](hdrtrace::Conventions::device_time_field),
    /// which the model spans must declare. See [`GpuConfig::for_conventions`].
    pub device_time_field: String,
    /// How the resolver polls for finished calls.
    pub resolver: ResolverOptions,
}

impl Default for GpuConfig {
    /// Device 0, the default conventions' device-time field, the default
    /// polling.
    fn default() -> Self {
        Self::for_conventions(&hdrtrace::Conventions::default())
    }
}

impl GpuConfig {
    /// Device 0, recording device time in the field `conventions` names (the
    /// ones the subscriber was built with), the default polling.
    pub fn for_conventions(conventions: &hdrtrace::Conventions) -> Self {
        Self {
            device: 0,
            device_time_field: conventions.device_time_name().to_owned(),
            resolver: ResolverOptions::default(),
        }
    }
}
