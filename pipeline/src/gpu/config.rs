//! How a GPU backend is opened: which device, where device time goes, how
//! the resolver polls.

use super::error::GpuError;
use super::resolver::ResolverOptions;
use std::time::Duration;

/// The longest `ResolverOptions::spin` and `poll` taken.
const MAX_POLL: Duration = Duration::from_secs(1);
/// The shortest `ResolverOptions::give_up` taken: less would give up on
/// calls still running normally.
const MIN_GIVE_UP: Duration = Duration::from_millis(1);

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

impl GpuConfig {
    /// Whether the options can work: the field a name the conventions would
    /// take (not empty, no whitespace, not another convention's field), the
    /// polling between 1 ns and 1 s, the give-up time at least 1 ms.
    /// [`GpuBackend::try_with`](super::GpuBackend::try_with) checks it first.
    pub fn validate(&self) -> Result<(), GpuError> {
        hdrtrace::Conventions::default()
            .device_time_field(self.device_time_field.as_str())
            .validate()
            .map_err(|e| GpuError::Invalid(format!("device_time_field: {e}").into()))?;
        let r = &self.resolver;
        let invalid = |what: &str, got: Duration, bound: &str| {
            Err(GpuError::Invalid(
                format!("resolver.{what} must be {bound}, got {got:?}").into(),
            ))
        };
        if r.poll.is_zero() || r.poll > MAX_POLL {
            return invalid("poll", r.poll, "between 1 ns and 1 s");
        }
        if r.spin > MAX_POLL {
            return invalid("spin", r.spin, "at most 1 s");
        }
        if r.give_up < MIN_GIVE_UP {
            return invalid("give_up", r.give_up, "at least 1 ms");
        }
        Ok(())
    }
}
