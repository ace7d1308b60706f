//! Templates as data: locale variants with parts per channel, declared
//! defaults, checks when an admin saves one, and rendering with minijinja
//! (variables, conditionals, loops, filters).
//!
//! Rendering is strict: a variable the data does not give and the template
//! does not default is an error naming it, never an empty hole in a
//! message. Optional variables are tested with `{% if x is defined %}`.
//! HTML parts are auto-escaped; the others are text.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channels::Channel;
use crate::text;

/// A template as stored (docs `templates`, id = name).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Template {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Values for variables the data may leave out.
    #[serde(default)]
    pub defaults: Map<String, Value>,
    /// Urgent messages (a login code) are not deferred by quiet hours.
    #[serde(default)]
    pub urgent: bool,
    /// Parts by locale tag (`en`, `fr`, `fr-CA`).
    pub variants: BTreeMap<String, Parts>,
    #[serde(default)]
    pub updated_at: i64,
    /// Every part compiled, on the first render.
    #[serde(skip)]
    pub compiled: Compiled,
}

/// A template's parts compiled once, on its first render: a batch renders
/// one template for thousands of subscribers, and parsing it each time was
/// most of a message's cost. `None` inside when a part does not compile
/// (each render then compiles and reports it). The defaults are kept as
/// template values too, converted once instead of per message.
#[derive(Clone, Default)]
pub struct Compiled {
    env: std::sync::OnceLock<Option<Environment<'static>>>,
    defaults: std::sync::OnceLock<minijinja::Value>,
}

impl PartialEq for Compiled {
    /// A cache: never part of what a template is.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.env.get() {
            Some(Some(_)) => "Compiled",
            Some(None) => "Compiled(failed)",
            None => "Compiled(not yet)",
        })
    }
}

/// The parts of one locale; a channel with no part is not sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Parts {
    pub subject: Option<String>,
    pub html: Option<String>,
    /// Generated from `html` when absent.
    pub text: Option<String>,
    pub sms: Option<String>,
    pub push_title: Option<String>,
    pub push_body: Option<String>,
    /// Default: the subject.
    pub in_app_title: Option<String>,
    /// Default: the SMS text, else the email's text.
    pub in_app_body: Option<String>,
    /// A link for push and in-app messages.
    pub link: Option<String>,
}

/// Why a template was refused when saved.
#[derive(Debug, PartialEq)]
pub struct Invalid(pub String);

/// What a render produced, per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rendered {
    /// The variant used.
    pub locale: String,
    pub email: Option<EmailParts>,
    pub sms: Option<String>,
    pub push: Option<TitleBody>,
    pub in_app: Option<TitleBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailParts {
    pub subject: String,
    pub html: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TitleBody {
    pub title: String,
    pub body: String,
    pub link: Option<String>,
}

/// Why a render failed; the data is the caller's to fix.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderError {
    /// A variable neither the data nor the template's defaults give.
    MissingVariable { name: String, part: String },
    /// Any other template error (a filter on the wrong type, ...).
    Failed { part: String, message: String },
}

impl RenderError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            RenderError::MissingVariable { .. } => "missing_variable",
            RenderError::Failed { .. } => "render_failed",
        }
    }

    /// For people: names the variable and the part.
    pub fn message(&self) -> String {
        match self {
            RenderError::MissingVariable { name, part } => format!(
                "the template needs variable `{name}` (in {part}); pass it in data or give the template a default"
            ),
            RenderError::Failed { part, message } => format!("{part}: {message}"),
        }
    }
}

const MAX_NAME: usize = 64;
const MAX_PART_BYTES: usize = 100_000;

/// Template names: 1-64 of `a-z 0-9 _ -`.
pub fn check_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "template names are 1-{MAX_NAME} characters of a-z, 0-9, '_' and '-'"
        )))
    }
}

/// A BCP 47-like tag: `en`, `fr-CA`, `zh-Hant-TW`.
pub fn check_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Parts {
    fn named(&self) -> [(&'static str, Option<&String>); 9] {
        [
            ("subject", self.subject.as_ref()),
            ("html", self.html.as_ref()),
            ("text", self.text.as_ref()),
            ("sms", self.sms.as_ref()),
            ("push_title", self.push_title.as_ref()),
            ("push_body", self.push_body.as_ref()),
            ("in_app_title", self.in_app_title.as_ref()),
            ("in_app_body", self.in_app_body.as_ref()),
            ("link", self.link.as_ref()),
        ]
    }

    /// Whether this variant can be sent on `channel`.
    pub fn has(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => {
                self.subject.is_some() && (self.html.is_some() || self.text.is_some())
            }
            Channel::Sms => self.sms.is_some(),
            Channel::Push => self.push_title.is_some() || self.push_body.is_some(),
            Channel::InApp => self.in_app_title.is_some() || self.subject.is_some(),
        }
    }
}

impl Template {
    /// Checks a template an admin saves: its name, its locales, and that
    /// every part compiles.
    pub fn check(&self) -> Result<(), Invalid> {
        check_name(&self.name)?;
        if self.variants.is_empty() {
            return Err(Invalid(
                "a template needs at least one locale variant".into(),
            ));
        }
        let env = environment();
        for (locale, parts) in &self.variants {
            if locale != "default" && !check_locale(locale) {
                return Err(Invalid(format!(
                    "{locale:?} is not a locale tag (like en, fr or fr-CA)"
                )));
            }
            let mut any = false;
            for (part, source) in parts.named() {
                let Some(source) = source else { continue };
                any = true;
                if source.len() > MAX_PART_BYTES {
                    return Err(Invalid(format!(
                        "{locale}.{part} is larger than {MAX_PART_BYTES} bytes"
                    )));
                }
                if let Err(e) = env.template_from_named_str(part_name(part), source) {
                    return Err(Invalid(format!(
                        "{locale}.{part} does not compile: {}",
                        e.detail().unwrap_or("syntax error")
                    )));
                }
            }
            if !any {
                return Err(Invalid(format!("variant {locale} has no parts")));
            }
        }
        Ok(())
    }

    /// The variant for the first tag of `wanted` the template has (each tag
    /// also tried without its last subtags: `fr-CA` → `fr`), else
    /// `default_locale`, else `default`, else the first.
    pub fn variant(&self, wanted: &[&str], default_locale: &str) -> Option<(&str, &Parts)> {
        let find = |tag: &str| {
            self.variants
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(tag))
                .map(|(k, v)| (k.as_str(), v))
        };
        for tag in wanted.iter().filter(|t| !t.is_empty()) {
            let mut tag: &str = tag;
            loop {
                if let Some(found) = find(tag) {
                    return Some(found);
                }
                match tag.rfind('-') {
                    Some(cut) => tag = &tag[..cut],
                    None => break,
                }
            }
        }
        find(default_locale)
            .or_else(|| find("default"))
            .or_else(|| self.variants.iter().next().map(|(k, v)| (k.as_str(), v)))
    }

    /// Renders the parts `channels` need from the variant chosen for
    /// `wanted` with `data` (a map, often [`layers`] of maps) over the
    /// template's defaults.
    pub fn render(
        &self,
        wanted: &[&str],
        default_locale: &str,
        data: &minijinja::Value,
        channels: &[Channel],
    ) -> Result<Rendered, RenderError> {
        let Some((locale, parts)) = self.variant(wanted, default_locale) else {
            return Ok(Rendered::default());
        };
        let defaults = self
            .compiled
            .defaults
            .get_or_init(|| minijinja::Value::from_serialize(&self.defaults));
        let ctx = layers([defaults.clone(), data.clone()]);
        let compiled = self.compiled.env.get_or_init(|| self.compile()).as_ref();
        let part =
            |name: &'static str, source: &Option<String>| -> Result<Option<String>, RenderError> {
                let Some(src) = source else {
                    return Ok(None);
                };
                let compiled = compiled.and_then(|env| {
                    env.get_template(&compiled_name(locale, name))
                        .ok()
                        .map(|t| (env, t))
                });
                match compiled {
                    Some((_, tmpl)) => render_template(&tmpl, name, src, &ctx).map(Some),
                    None => render_one(&environment(), name, src, &ctx).map(Some),
                }
            };
        let mut out = Rendered {
            locale: locale.to_owned(),
            ..Rendered::default()
        };
        let link = || part("link", &parts.link);
        for channel in channels {
            if !parts.has(*channel) {
                continue;
            }
            match channel {
                Channel::Email => {
                    let subject = part("subject", &parts.subject)?.unwrap_or_default();
                    let html = part("html", &parts.html)?;
                    let text = match part("text", &parts.text)? {
                        Some(t) => t,
                        None => text::from_html(html.as_deref().unwrap_or("")),
                    };
                    out.email = Some(EmailParts {
                        subject: one_line(&subject),
                        html,
                        text,
                    });
                }
                Channel::Sms => out.sms = part("sms", &parts.sms)?,
                Channel::Push => {
                    out.push = Some(TitleBody {
                        title: one_line(
                            &part("push_title", &parts.push_title)?.unwrap_or_default(),
                        ),
                        body: part("push_body", &parts.push_body)?.unwrap_or_default(),
                        link: link()?,
                    })
                }
                Channel::InApp => {
                    let title = match part("in_app_title", &parts.in_app_title)? {
                        Some(t) => t,
                        None => part("subject", &parts.subject)?.unwrap_or_default(),
                    };
                    let body = match part("in_app_body", &parts.in_app_body)? {
                        Some(b) => b,
                        None => match part("sms", &parts.sms)? {
                            Some(b) => b,
                            None => match part("text", &parts.text)? {
                                Some(b) => b,
                                None => {
                                    text::from_html(&part("html", &parts.html)?.unwrap_or_default())
                                }
                            },
                        },
                    };
                    out.in_app = Some(TitleBody {
                        title: one_line(&title),
                        body,
                        link: link()?,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The name a part compiles under: the `.html` suffix turns on escaping.
fn part_name(part: &str) -> &'static str {
    match part {
        "html" => "html.html",
        "subject" => "subject",
        "text" => "text",
        "sms" => "sms",
        "push_title" => "push_title",
        "push_body" => "push_body",
        "in_app_title" => "in_app_title",
        "in_app_body" => "in_app_body",
        _ => "link",
    }
}

impl Template {
    /// An environment holding every part of every variant, or `None` if
    /// one does not compile.
    fn compile(&self) -> Option<Environment<'static>> {
        let mut env = environment();
        for (locale, parts) in &self.variants {
            for (name, source) in parts.sources() {
                if let Some(source) = source {
                    env.add_template_owned(compiled_name(locale, name), source.clone())
                        .ok()?;
                }
            }
        }
        Some(env)
    }
}

impl Parts {
    /// Every part by name.
    fn sources(&self) -> [(&'static str, &Option<String>); 9] {
        [
            ("subject", &self.subject),
            ("html", &self.html),
            ("text", &self.text),
            ("sms", &self.sms),
            ("push_title", &self.push_title),
            ("push_body", &self.push_body),
            ("in_app_title", &self.in_app_title),
            ("in_app_body", &self.in_app_body),
            ("link", &self.link),
        ]
    }
}

/// The name a variant's part is compiled under (keeping `.html` last).
fn compiled_name(locale: &str, part: &str) -> String {
    format!("{locale}/{}", part_name(part))
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // Bounds a template's loops over huge data: the plugin's fuel would
    // stop it anyway, with a less useful error.
    env.set_recursion_limit(100);
    env
}

/// Maps seen as one, without copying them: a variable of a later map wins
/// over the same variable of an earlier one.
pub fn layers(maps: impl IntoIterator<Item = minijinja::Value>) -> minijinja::Value {
    minijinja::value::merge_maps(maps)
}

fn render_one(
    env: &Environment<'_>,
    part: &'static str,
    source: &str,
    ctx: &minijinja::Value,
) -> Result<String, RenderError> {
    let tmpl = env
        .template_from_named_str(part_name(part), source)
        .map_err(|e| failed(part, &e))?;
    render_template(&tmpl, part, source, ctx)
}

fn render_template(
    tmpl: &minijinja::Template<'_, '_>,
    part: &'static str,
    source: &str,
    ctx: &minijinja::Value,
) -> Result<String, RenderError> {
    tmpl.render(ctx).map_err(|e| {
        if e.kind() == ErrorKind::UndefinedError {
            let missing: Vec<String> = tmpl
                .undeclared_variables(true)
                .into_iter()
                .filter(|v| resolve(ctx, v).is_none())
                .collect();
            RenderError::MissingVariable {
                name: undefined_name(source, &e, &missing),
                part: part.to_owned(),
            }
        } else {
            failed(part, &e)
        }
    })
}

fn failed(part: &str, e: &minijinja::Error) -> RenderError {
    RenderError::Failed {
        part: part.to_owned(),
        message: e
            .detail()
            .map_or_else(|| e.kind().to_string(), str::to_owned),
    }
}

/// The value at a dotted path of `ctx`.
fn resolve(ctx: &minijinja::Value, path: &str) -> Option<minijinja::Value> {
    path.split('.').try_fold(ctx.clone(), |v, part| {
        v.get_attr(part).ok().filter(|found| !found.is_undefined())
    })
}

/// Which variable the error is about: of the variables the data lacks
/// (`missing`), the one named last before the error's position (a
/// variable tested with `is defined` is in `missing` too, but comes after
/// no error). minijinja's own message says only "undefined value".
fn undefined_name(source: &str, e: &minijinja::Error, missing: &[String]) -> String {
    let end = e.range().map_or(source.len(), |r| r.end.min(source.len()));
    let before = &source[..end];
    missing
        .iter()
        .filter_map(|m| before.rfind(m.as_str()).map(|at| (at, m)))
        .max_by_key(|(at, m)| (*at, m.len()))
        .map(|(_, m)| m.clone())
        .or_else(|| missing.first().cloned())
        .unwrap_or_else(|| "?".into())
}

/// Subjects and titles are one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(variants: Value) -> Template {
        serde_json::from_value(json!({
            "name": "welcome",
            "defaults": {"product": "Weft"},
            "variants": variants,
        }))
        .expect("template")
    }

    fn data(v: Value) -> minijinja::Value {
        minijinja::Value::from_serialize(&v)
    }

    #[test]
    fn variables_conditionals_loops_and_escaping() {
        let t = template(json!({"en": {
            "subject": "Hi {{ name }}",
            "html": "<p>Hi {{ name }}</p>{% if coupon is defined %}<p>Code {{ coupon }}</p>{% endif %}<ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul><p>{{ product }}</p>",
        }}));
        let r = t
            .render(
                &["en"],
                "en",
                &data(json!({"name": "<Ada>", "items": ["a", "b"]})),
                &[Channel::Email],
            )
            .expect("renders");
        let email = r.email.expect("email");
        assert_eq!(email.subject, "Hi <Ada>");
        let html = email.html.expect("html");
        assert!(html.contains("<p>Hi &lt;Ada&gt;</p>"), "{html}");
        assert!(!html.contains("Code"));
        assert!(html.contains("<li>a</li><li>b</li>"));
        assert!(html.contains("Weft"), "the default fills in");
        // The text part comes from the HTML.
        assert_eq!(email.text, "Hi <Ada>\n\n- a\n- b\n\nWeft");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let t = template(
            json!({"en": {"subject": "Order {{ order.id }}", "text": "Hello {{ name|upper }}"}}),
        );
        let err = t
            .render(
                &[],
                "en",
                &data(json!({"order": {"id": 1}})),
                &[Channel::Email],
            )
            .expect_err("name is missing");
        assert_eq!(
            err,
            RenderError::MissingVariable {
                name: "name".into(),
                part: "text".into()
            }
        );
        assert!(err.message().contains("`name`"));
        let err = t
            .render(&[], "en", &data(json!({"name": "x"})), &[Channel::Email])
            .expect_err("order is missing");
        assert!(
            matches!(err, RenderError::MissingVariable { ref name, .. } if name.starts_with("order")),
            "{err:?}"
        );
    }

    #[test]
    fn locales_fall_back_from_region_to_language_to_default() {
        let t = template(json!({
            "en": {"sms": "hello"},
            "fr": {"sms": "bonjour"},
            "fr-CA": {"sms": "allô"},
        }));
        let pick = |wanted: &[&str]| t.variant(wanted, "en").map(|(k, _)| k.to_owned());
        assert_eq!(pick(&["fr-CA"]).as_deref(), Some("fr-CA"));
        assert_eq!(pick(&["fr-BE"]).as_deref(), Some("fr"));
        assert_eq!(pick(&["de-DE", "fr"]).as_deref(), Some("fr"));
        assert_eq!(pick(&["de"]).as_deref(), Some("en"));
        assert_eq!(pick(&["FR-ca"]).as_deref(), Some("fr-CA"));
        let r = t
            .render(&["fr-BE"], "en", &data(json!({})), &[Channel::Sms])
            .expect("renders");
        assert_eq!(
            (r.locale.as_str(), r.sms.as_deref()),
            ("fr", Some("bonjour"))
        );
    }

    #[test]
    fn channels_without_a_part_are_left_out() {
        let t = template(json!({"en": {"subject": "S", "text": "T"}}));
        let r = t
            .render(
                &[],
                "en",
                &data(json!({})),
                &[Channel::Email, Channel::Sms, Channel::InApp],
            )
            .expect("renders");
        assert!(r.email.is_some() && r.sms.is_none());
        let in_app = r.in_app.expect("in-app from subject and text");
        assert_eq!((in_app.title.as_str(), in_app.body.as_str()), ("S", "T"));
    }

    #[test]
    fn saving_checks_names_locales_and_syntax() {
        assert!(
            template(json!({"en": {"sms": "ok {{ x }}"}}))
                .check()
                .is_ok()
        );
        assert!(template(json!({})).check().is_err());
        assert!(template(json!({"english!": {"sms": "x"}})).check().is_err());
        let bad = template(json!({"en": {"sms": "{% if %}"}}))
            .check()
            .expect_err("syntax");
        assert!(bad.0.contains("en.sms"), "{bad:?}");
        assert!(check_name("Welcome").is_err());
        assert!(check_name("order-shipped_2").is_ok());
        assert!(check_locale("zh-Hant-TW") && !check_locale("e") && !check_locale("en_US"));
    }
}
