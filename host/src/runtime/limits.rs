//! Per-call limits: the manifest's request capped by the operator.

use serde::Serialize;
use wasmtime::ResourceLimiter;

use crate::catalog::manifest::Limits;
use crate::config::RuntimeConfig;

/// Limits a call actually runs under.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct EffectiveLimits {
    pub fuel: u64,
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub max_response_bytes: u64,
}

impl EffectiveLimits {
    /// `asked` capped by `caps`; unset values get the cap.
    pub fn new(asked: &Limits, caps: &RuntimeConfig) -> Self {
        let cap = |asked: Option<u64>, cap: u64| asked.map_or(cap, |a| a.min(cap));
        Self {
            fuel: cap(asked.fuel, caps.max_fuel),
            timeout_ms: cap(asked.timeout_ms, caps.max_timeout_ms),
            memory_bytes: cap(asked.memory_mib, caps.max_memory_mib) << 20,
            max_response_bytes: cap(asked.max_response_bytes, caps.max_response_bytes),
        }
    }
}

/// Enforces the memory limit and remembers the peak and any refusal.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub limit: usize,
    pub peak: usize,
    pub refused: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            // Refuse the growth (memory.grow returns -1); the guest usually
            // aborts next, and the call is reported as over its memory limit.
            self.refused = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_asks_operator_caps() {
        let caps = RuntimeConfig {
            max_fuel: 100,
            max_timeout_ms: 1000,
            max_memory_mib: 64,
            ..RuntimeConfig::default()
        };
        let asked = Limits {
            fuel: Some(1000),
            timeout_ms: Some(10),
            memory_mib: None,
            max_response_bytes: None,
        };
        let l = EffectiveLimits::new(&asked, &caps);
        assert_eq!((l.fuel, l.timeout_ms, l.memory_bytes), (100, 10, 64 << 20));
    }
}
