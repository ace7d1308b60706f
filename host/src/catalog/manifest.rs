//! `plugin.toml`: what a plugin is, may use, serves and lets tenants set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, Result};
use crate::tenancy::Role;

/// The WIT package versions this host can run.
pub const SUPPORTED_WIT: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0"];

/// A parsed, validated manifest.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: PluginInfo,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Tenant-editable settings, by key.
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,
    /// Event topics delivered to the plugin (used by the events capability).
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Cron jobs (used by the scheduler).
    #[serde(default)]
    pub schedules: Vec<Schedule>,
}

/// The `[plugin]` table.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInfo {
    /// `[a-z][a-z0-9-]{0,47}`.
    pub name: String,
    /// Semantic version of this build.
    pub version: String,
    /// `weft:platform` version the component targets.
    pub wit: String,
    #[serde(default)]
    pub description: String,
    /// WIT interfaces the plugin may import.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// A platform interface a plugin may import.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Kv,
    Docs,
    Config,
    Log,
    /// `weft:platform@0.2.0` and later.
    Events,
    /// `weft:platform@0.2.0` and later.
    Search,
    /// `weft:platform@0.3.0` and later.
    Llm,
    /// `weft:platform@0.4.0` and later.
    Outbox,
    /// `weft:platform@0.5.0` and later.
    Library,
}

impl Capability {
    /// The interface name inside `weft:platform`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Kv => "kv",
            Capability::Docs => "docs",
            Capability::Config => "config",
            Capability::Log => "log",
            Capability::Events => "events",
            Capability::Search => "search",
            Capability::Llm => "llm",
            Capability::Outbox => "outbox",
            Capability::Library => "library",
        }
    }

    /// The first WIT version with the interface.
    pub fn since(self) -> &'static str {
        match self {
            Capability::Kv | Capability::Docs | Capability::Config | Capability::Log => "0.1.0",
            Capability::Events | Capability::Search => "0.2.0",
            Capability::Llm => "0.3.0",
            Capability::Outbox => "0.4.0",
            Capability::Library => "0.5.0",
        }
    }

    /// Whether WIT version `wit` (one of [`SUPPORTED_WIT`]) has the interface.
    pub fn in_wit(self, wit: &str) -> bool {
        let position = |v: &str| SUPPORTED_WIT.iter().position(|s| *s == v);
        position(self.since()) <= position(wit)
    }
}

/// Per-call limits the plugin asks for; the operator's caps win.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_response_bytes: Option<u64>,
}

/// HTTP method a route answers (`*`: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RouteMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "*")]
    Any,
}

impl RouteMethod {
    fn matches(self, method: &str) -> bool {
        match self {
            RouteMethod::Any => true,
            RouteMethod::Get => method == "GET" || method == "HEAD",
            RouteMethod::Post => method == "POST",
            RouteMethod::Put => method == "PUT",
            RouteMethod::Patch => method == "PATCH",
            RouteMethod::Delete => method == "DELETE",
        }
    }
}

/// A route the plugin serves below `/t/{tenant}/p/{plugin}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub method: RouteMethod,
    /// `/literal/{param}/...`, optionally ending in `{*rest}`.
    pub path: String,
    /// Anonymous callers allowed.
    #[serde(default)]
    pub public: bool,
    /// Least role a signed-in caller needs (ignored for public routes).
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::User
}

/// Type of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    String,
    Integer,
    Number,
    Boolean,
}

/// One tenant-editable setting.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    #[serde(rename = "type")]
    pub kind: SettingType,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub default: Option<Value>,
    #[serde(default)]
    pub description: String,
    /// The tenant admin must set it (when there is no default).
    #[serde(default)]
    pub required: bool,
}

/// An event subscription.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub topic: String,
    /// Each delivery runs apart: in a unit of work of its own that its
    /// handler begins at its first write, side by side with the others
    /// (instead of one after another in a shared transaction begun before
    /// the first). For handlers that compute long before they write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apart: bool,
}

/// A cron job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidManifest(msg.into())
}

impl Manifest {
    /// Parses and validates `plugin.toml` text.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        let p = &self.plugin;
        let name_ok = (1..=48).contains(&p.name.len())
            && p.name.as_bytes()[0].is_ascii_lowercase()
            && p.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(invalid("plugin.name must match [a-z][a-z0-9-]{0,47}"));
        }
        if !is_semver(&p.version) {
            return Err(invalid("plugin.version must be a semantic version (1.2.3)"));
        }
        if !SUPPORTED_WIT.contains(&p.wit.as_str()) {
            return Err(invalid(format!(
                "plugin.wit {} is not supported (this host runs {SUPPORTED_WIT:?})",
                p.wit
            )));
        }
        if p.description.len() > 500 {
            return Err(invalid("plugin.description is at most 500 characters"));
        }
        for route in &self.routes {
            parse_pattern(&route.path)
                .map_err(|e| invalid(format!("route {}: {e}", route.path)))?;
            if route.role == Role::Superadmin {
                return Err(invalid(format!(
                    "route {}: role is user or admin",
                    route.path
                )));
            }
        }
        for (key, setting) in &self.settings {
            if key.is_empty()
                || key.len() > 64
                || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(invalid(format!(
                    "setting {key:?}: keys are 1-64 characters of A-Z, a-z, 0-9, '_'"
                )));
            }
            if let Some(default) = &setting.default {
                check_setting_value(key, setting, default)?;
            }
        }
        let handlers = !self.subscriptions.is_empty() || !self.schedules.is_empty();
        if handlers && p.wit == "0.1.0" {
            return Err(invalid(
                "subscriptions and schedules need plugin.wit 0.2.0 or later (0.1.0 has no handlers)",
            ));
        }
        if let Some(c) = p.capabilities.iter().find(|c| !c.in_wit(&p.wit)) {
            return Err(invalid(format!(
                "capability {:?} needs plugin.wit {} or later",
                c.interface(),
                c.since()
            )));
        }
        for subscription in &self.subscriptions {
            crate::events::check_topic(&subscription.topic)
                .map_err(|e| invalid(format!("subscription: {e}")))?;
        }
        let mut names = std::collections::HashSet::new();
        for schedule in &self.schedules {
            let name_ok = (1..=64).contains(&schedule.name.len())
                && schedule.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err(invalid(format!(
                    "schedule {:?}: names are 1-64 characters of a-z, 0-9, '-', '_'",
                    schedule.name
                )));
            }
            if !names.insert(&schedule.name) {
                return Err(invalid(format!("schedule {:?} twice", schedule.name)));
            }
            crate::schedules::parse(&schedule.cron)
                .map_err(|e| invalid(format!("schedule {}: {e}", schedule.name)))?;
        }
        Ok(())
    }

    /// The route serving `method` + `path`, with its path parameters.
    /// `Err(true)` if the path exists under another method.
    pub fn route(&self, method: &str, path: &str) -> Result<&Route, bool> {
        let mut path_exists = false;
        for route in &self.routes {
            if pattern_matches(&route.path, path) {
                if route.method.matches(method) {
                    return Ok(route);
                }
                path_exists = true;
            }
        }
        Err(path_exists)
    }

    /// `stored` settings checked against the schema, with defaults filled
    /// in: the object a plugin's `config` import sees.
    pub fn effective_settings(
        &self,
        stored: &serde_json::Map<String, Value>,
    ) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        for (key, setting) in &self.settings {
            if let Some(value) = stored.get(key).or(setting.default.as_ref()) {
                out.insert(key.clone(), value.clone());
            }
        }
        out
    }

    /// Checks a tenant admin's settings object against the schema.
    pub fn check_settings(&self, settings: &serde_json::Map<String, Value>) -> Result<()> {
        for (key, value) in settings {
            let setting = self
                .settings
                .get(key)
                .ok_or_else(|| Error::InvalidSettings(format!("unknown setting {key:?}")))?;
            check_setting_value(key, setting, value)?;
        }
        for (key, setting) in &self.settings {
            if setting.required && setting.default.is_none() && !settings.contains_key(key) {
                return Err(Error::InvalidSettings(format!(
                    "setting {key:?} is required"
                )));
            }
        }
        Ok(())
    }

    /// The settings schema as JSON Schema, for forms in the portal.
    pub fn settings_json_schema(&self) -> Value {
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for (key, setting) in &self.settings {
            let kind = match setting.kind {
                SettingType::String => "string",
                SettingType::Integer => "integer",
                SettingType::Number => "number",
                SettingType::Boolean => "boolean",
            };
            let mut prop = serde_json::json!({ "type": kind, "description": setting.description });
            if let Some(default) = &setting.default {
                prop["default"] = default.clone();
            }
            properties.insert(key.clone(), prop);
            if setting.required && setting.default.is_none() {
                required.push(Value::from(key.clone()));
            }
        }
        serde_json::json!({ "type": "object", "additionalProperties": false, "properties": properties, "required": required })
    }
}

fn check_setting_value(key: &str, setting: &Setting, value: &Value) -> Result<()> {
    let ok = match setting.kind {
        SettingType::String => value.as_str().is_some_and(|s| s.len() <= 10_000),
        SettingType::Integer => value.is_i64() || value.is_u64(),
        SettingType::Number => value.is_number(),
        SettingType::Boolean => value.is_boolean(),
    };
    if ok {
        Ok(())
    } else {
        let kind = match setting.kind {
            SettingType::String => "a string",
            SettingType::Integer => "an integer",
            SettingType::Number => "a number",
            SettingType::Boolean => "true or false",
        };
        Err(Error::InvalidSettings(format!(
            "setting {key:?} must be {kind}"
        )))
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a route pattern: absolute, `{name}` segments, `{*rest}` last.
fn parse_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err("must start with '/'".into());
    }
    let segments: Vec<&str> = pattern[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let name = inner.strip_prefix('*').unwrap_or(inner);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("bad parameter {seg}"));
            }
            if inner.starts_with('*') && i + 1 != segments.len() {
                return Err("{*rest} must be the last segment".into());
            }
        } else if seg.contains(['{', '}']) {
            return Err(format!("bad segment {seg}"));
        }
    }
    Ok(())
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.trim_start_matches('/').split('/');
    let mut segs = path.trim_start_matches('/').split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return true,
            (Some(p), _) if p.starts_with("{*") => return true,
            (Some(p), Some(s)) if p.starts_with('{') => {
                if s.is_empty() {
                    return false;
                }
            }
            (Some(p), Some(s)) => {
                if p != s {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"
[plugin]
name = "hello"
version = "0.1.0"
wit = "0.1.0"
capabilities = ["kv", "docs"]

[limits]
fuel = 1000

[[routes]]
method = "GET"
path = "/notes/{id}"

[[routes]]
method = "*"
path = "/files/{*rest}"
public = true

[settings.greeting]
type = "string"
default = "Hello"

[settings.count]
type = "integer"
required = true
"#;

    #[test]
    fn parses_and_routes() {
        let m = Manifest::parse(HELLO).expect("valid");
        assert_eq!(
            m.plugin.capabilities,
            vec![Capability::Kv, Capability::Docs]
        );
        assert!(m.route("GET", "/notes/7").is_ok());
        assert!(m.route("HEAD", "/notes/7").is_ok());
        assert_eq!(m.route("POST", "/notes/7").err(), Some(true));
        assert_eq!(m.route("GET", "/notes").err(), Some(false));
        assert_eq!(m.route("GET", "/notes/").err(), Some(false));
        assert!(m.route("DELETE", "/files/a/b/c").is_ok_and(|r| r.public));
    }

    #[test]
    fn settings_are_checked_against_schema() {
        let m = Manifest::parse(HELLO).expect("valid");
        let ok: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"count": 3}"#).expect("json");
        assert!(m.check_settings(&ok).is_ok());
        assert_eq!(m.effective_settings(&ok)["greeting"], "Hello");
        for bad in [r#"{"count": "3"}"#, r#"{}"#, r#"{"count": 1, "other": 1}"#] {
            let bad: serde_json::Map<String, Value> = serde_json::from_str(bad).expect("json");
            assert!(m.check_settings(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_manifests_say_why() {
        for (text, needle) in [
            (
                HELLO.replace("name = \"hello\"", "name = \"Hello\""),
                "plugin.name",
            ),
            (
                HELLO.replace("wit = \"0.1.0\"", "wit = \"9.0.0\""),
                "not supported",
            ),
            (
                HELLO.replace(
                    "capabilities = [\"kv\", \"docs\"]",
                    "capabilities = [\"sockets\"]",
                ),
                "unknown variant",
            ),
            (
                HELLO.replace("/files/{*rest}", "/files/{*rest}/x"),
                "last segment",
            ),
            (
                HELLO.replace("fuel = 1000", "fuel = 1000\nfoo = 1"),
                "unknown field",
            ),
        ] {
            let err = Manifest::parse(&text).expect_err("invalid").to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
