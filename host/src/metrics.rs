//! Prometheus metrics: plugin calls, errors, latency and fuel per tenant
//! and plugin, and HTTP responses by status. Process-wide, like the
//! process they describe.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ids::TenantId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tenant: String,
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    tenant: String,
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    fuel: Family<PluginLabels, Counter>,
    latency: Family<PluginLabels, Histogram>,
    http: Family<StatusLabels, Counter>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("weft");
        let calls = Family::<CallLabels, Counter>::default();
        let fuel = Family::<PluginLabels, Counter>::default();
        let latency = Family::<PluginLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ])
        });
        let http = Family::<StatusLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls by tenant, plugin and outcome (ok or error code)",
            calls.clone(),
        );
        registry.register("plugin_fuel", "Fuel consumed by plugin calls", fuel.clone());
        registry.register(
            "plugin_call_duration_seconds",
            "Wall time of plugin calls",
            latency.clone(),
        );
        registry.register("http_responses", "HTTP responses by status", http.clone());
        Metrics {
            registry,
            calls,
            fuel,
            latency,
            http,
        }
    })
}

/// Counts one plugin call.
pub fn record_call(tenant: &TenantId, plugin: &str, outcome: &str, wall_us: u64, fuel: u64) {
    let m = metrics();
    m.calls
        .get_or_create(&CallLabels {
            tenant: tenant.to_string(),
            plugin: plugin.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
    let labels = PluginLabels {
        tenant: tenant.to_string(),
        plugin: plugin.to_owned(),
    };
    m.fuel.get_or_create(&labels).inc_by(fuel);
    m.latency
        .get_or_create(&labels)
        .observe(wall_us as f64 / 1e6);
}

/// Counts one HTTP response.
pub fn record_http(status: u16) {
    metrics()
        .http
        .get_or_create(&StatusLabels {
            status: status.to_string(),
        })
        .inc();
}

/// The Prometheus text exposition.
pub fn render() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    out
}
