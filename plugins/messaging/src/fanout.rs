//! One send, planned: which channels go, which are skipped and why, which
//! wait for quiet hours to end, and the rendered message of each.
//!
//! Pure: the caller hands in the template, the contact, the tenant's
//! suppressions (as a lookup) and the time, so every rule here is tested
//! natively. `send.rs` reads those and writes what the plan says.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::channels::{Channel, Contact, Recipient};
use crate::templates::{RenderError, Template};
use crate::tokens::{self, Claims, Purpose};

/// A send to one recipient, as requested (and as stored when it waits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub recipient: Recipient,
    pub channels: Vec<Channel>,
    pub template: String,
    #[serde(default)]
    pub data: Map<String, Value>,
    pub locale: Option<String>,
    /// The base of the outbox idempotency keys (`{key}:{channel}`) and the
    /// delivery log id: derived from the request, so a retry sends nothing
    /// twice.
    pub key: String,
    /// What caused it: `send`, `batch:{id}`, `rule:{id}`, ...
    pub source: String,
    /// A list's suppression scope (`list:{id}`), checked besides `all`.
    pub scope: Option<String>,
    /// Released after quiet hours: not deferred again.
    #[serde(default)]
    pub ignore_quiet: bool,
    /// Data a run of jobs shares (a batch's own), converted for the
    /// templates once for all of them; `data` wins over it. Never stored:
    /// a job that waits has it folded into `data` ([`Job::folded`]).
    #[serde(skip)]
    pub shared: Option<minijinja::Value>,
}

impl Job {
    /// This job with its shared data folded into `data`, to be stored.
    pub fn folded(&self) -> Job {
        let mut job = self.clone();
        if let Some(shared) = job.shared.take() {
            let mut data = match serde_json::to_value(&shared) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            data.append(&mut job.data);
            job.data = data;
        }
        job
    }
}

/// What the planner needs besides the job.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    pub secret: &'a [u8],
    /// Base of links, no trailing slash (may be empty: links are then
    /// relative to the plugin's mount).
    pub public_url: &'a str,
    pub default_locale: &'a str,
    pub now_ms: i64,
}

/// A rendered message for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Email {
        to: String,
        subject: String,
        html: Option<String>,
        text: String,
        headers: Vec<(String, String)>,
    },
    Sms {
        to: String,
        body: String,
    },
    Push {
        token: String,
        title: String,
        body: String,
        link: Option<String>,
    },
    InApp {
        user: String,
        title: String,
        body: String,
        link: Option<String>,
    },
}

/// The fate of one channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Queue these (a push may go to several devices), under these keys.
    Send(Vec<(String, Outgoing)>),
    Skip(&'static str),
    /// Quiet hours: send at this time.
    Defer(i64),
}

/// The plan of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub locale: String,
    pub steps: Vec<(Channel, Step)>,
}

/// Why a job cannot be planned at all: the request's to fix.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Render(RenderError),
}

/// Suppression subjects that stop `channel` for this recipient: the user
/// (every channel), and the address the channel uses.
pub fn subjects(recipient: &Recipient, contact: Option<&Contact>, channel: Channel) -> Vec<String> {
    let mut out = vec![recipient.key()];
    if let (Recipient::User(_), Some(c)) = (recipient, contact) {
        match channel {
            Channel::Email => out.extend(c.email.as_ref().map(|e| format!("e:{e}"))),
            Channel::Sms => out.extend(c.phone.as_ref().map(|p| format!("p:{p}"))),
            Channel::Push | Channel::InApp => {}
        }
    }
    out
}

/// The kv key of a suppression.
pub fn suppression_key(scope: &str, subject: &str) -> String {
    format!("sup:{scope}:{subject}")
}

/// The token subject of the recipient's unsubscribe link.
fn unsubscribe_subject(recipient: &Recipient) -> String {
    recipient.key()
}

/// The unsubscribe link of `job`.
pub fn unsubscribe_url(job: &Job, env: &Env<'_>) -> String {
    let token = tokens::sign(
        env.secret,
        &Claims {
            purpose: Purpose::Unsubscribe,
            scope: job.scope.clone().unwrap_or_else(|| "all".into()),
            subject: unsubscribe_subject(&job.recipient),
        },
    );
    format!("{}/u/{token}", env.public_url)
}

/// A `Message-ID` that is the same for every attempt of this message, so
/// a resend after a crash is recognizably the same email.
pub fn message_id(outbox_key: &str) -> String {
    let local: String = outbox_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}@messaging.weft>")
}

/// Plans `job`. `suppressed(key)` answers whether a suppression key
/// exists.
pub fn plan(
    job: &Job,
    template: &Template,
    contact: Option<&Contact>,
    env: &Env<'_>,
    suppressed: &dyn Fn(&str) -> bool,
) -> Result<Plan, Refusal> {
    let unsubscribe = unsubscribe_url(job, env);
    let who = match (&job.recipient, contact) {
        (Recipient::User(id), Some(c)) => {
            json!({"id": id, "name": c.name, "email": c.email, "phone": c.phone})
        }
        (Recipient::User(id), None) => json!({"id": id, "name": ""}),
        (Recipient::Email(a), _) => json!({"email": a, "name": ""}),
        (Recipient::Phone(p), _) => json!({"phone": p, "name": ""}),
    };
    // The job's data wins over what the plan adds; nothing is copied.
    let mut maps = vec![minijinja::context! { recipient => who, unsubscribe_url => &unsubscribe }];
    maps.extend(job.shared.clone());
    maps.push(minijinja::Value::from_serialize(&job.data));
    let data = crate::templates::layers(maps);
    let wanted: Vec<&str> = [
        job.locale.as_deref(),
        contact.and_then(|c| c.locale.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Render only the channels that may go: a part for a channel that is
    // skipped anyway must not fail the send.
    let mut steps: Vec<(Channel, Option<Step>)> = Vec::new();
    for &channel in &job.channels {
        steps.push((
            channel,
            gate(job, template, contact, env, suppressed, channel),
        ));
    }
    let to_render: Vec<Channel> = steps
        .iter()
        .filter(|(_, s)| s.is_none() || matches!(s, Some(Step::Defer(_))))
        .map(|(c, _)| *c)
        .collect();
    let rendered = template
        .render(&wanted, env.default_locale, &data, &to_render)
        .map_err(Refusal::Render)?;
    let steps = steps
        .into_iter()
        .map(|(channel, gated)| {
            let step = match gated {
                Some(step) => step,
                None => match outgoing(job, contact, &rendered, channel, &unsubscribe) {
                    Some(msgs) if !msgs.is_empty() => Step::Send(msgs),
                    Some(_) => Step::Skip("no_address"),
                    None => Step::Skip("no_template_part"),
                },
            };
            (channel, step)
        })
        .collect();
    Ok(Plan {
        locale: rendered.locale,
        steps,
    })
}

/// A skip or a deferral decided before rendering; `None`: it may go.
fn gate(
    job: &Job,
    template: &Template,
    contact: Option<&Contact>,
    env: &Env<'_>,
    suppressed: &dyn Fn(&str) -> bool,
    channel: Channel,
) -> Option<Step> {
    let reachable = match (&job.recipient, channel) {
        (Recipient::User(_), Channel::InApp) => true,
        (Recipient::User(_), Channel::Email) => contact.is_some_and(|c| c.email.is_some()),
        (Recipient::User(_), Channel::Sms) => contact.is_some_and(|c| c.phone.is_some()),
        (Recipient::User(_), Channel::Push) => contact.is_some_and(|c| !c.push_tokens.is_empty()),
        (Recipient::Email(_), Channel::Email) | (Recipient::Phone(_), Channel::Sms) => true,
        _ => false,
    };
    if !reachable {
        return Some(Step::Skip("no_address"));
    }
    let scopes: Vec<&str> = std::iter::once("all").chain(job.scope.as_deref()).collect();
    let subjects = subjects(&job.recipient, contact, channel);
    let stopped = scopes.iter().any(|scope| {
        subjects
            .iter()
            .any(|s| suppressed(&suppression_key(scope, s)))
    });
    if stopped {
        return Some(Step::Skip("unsubscribed"));
    }
    if contact.is_some_and(|c| !c.allows(channel)) {
        return Some(Step::Skip("preference_off"));
    }
    let quiet = contact.and_then(|c| c.quiet_hours.as_ref());
    if !template.urgent
        && !job.ignore_quiet
        && let Some(until) = quiet.and_then(|q| q.defer_until(channel, env.now_ms))
    {
        return Some(Step::Defer(until));
    }
    None
}

fn outgoing(
    job: &Job,
    contact: Option<&Contact>,
    r: &crate::templates::Rendered,
    channel: Channel,
    unsubscribe: &str,
) -> Option<Vec<(String, Outgoing)>> {
    let key = format!("{}:{}", job.key, channel.as_str());
    Some(match channel {
        Channel::Email => {
            let e = r.email.as_ref()?;
            let to = match &job.recipient {
                Recipient::Email(a) => Some(a.clone()),
                _ => contact.and_then(|c| c.email.clone()),
            };
            to.map(|to| {
                let headers = vec![
                    ("List-Unsubscribe".to_owned(), format!("<{unsubscribe}>")),
                    (
                        "List-Unsubscribe-Post".to_owned(),
                        "List-Unsubscribe=One-Click".to_owned(),
                    ),
                    ("Message-ID".to_owned(), message_id(&key)),
                ];
                let msg = Outgoing::Email {
                    to,
                    subject: e.subject.clone(),
                    html: e.html.clone(),
                    text: e.text.clone(),
                    headers,
                };
                (key, msg)
            })
            .into_iter()
            .collect()
        }
        Channel::Sms => {
            let body = r.sms.as_ref()?;
            let to = match &job.recipient {
                Recipient::Phone(p) => Some(p.clone()),
                _ => contact.and_then(|c| c.phone.clone()),
            };
            to.map(|to| {
                (
                    key,
                    Outgoing::Sms {
                        to,
                        body: body.clone(),
                    },
                )
            })
            .into_iter()
            .collect()
        }
        Channel::Push => {
            let p = r.push.as_ref()?;
            contact
                .map(|c| c.push_tokens.as_slice())
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, token)| {
                    (
                        format!("{key}:{i}"),
                        Outgoing::Push {
                            token: token.clone(),
                            title: p.title.clone(),
                            body: p.body.clone(),
                            link: p.link.clone(),
                        },
                    )
                })
                .collect()
        }
        Channel::InApp => {
            let n = r.in_app.as_ref()?;
            let Recipient::User(user) = &job.recipient else {
                return Some(Vec::new());
            };
            vec![(
                key,
                Outgoing::InApp {
                    user: user.clone(),
                    title: n.title.clone(),
                    body: n.body.clone(),
                    link: n.link.clone(),
                },
            )]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::QuietHours;

    fn template() -> Template {
        serde_json::from_value(json!({
            "name": "reply",
            "variants": {
                "en": {"subject": "New reply to {{ topic }}", "html": "<p>{{ recipient.name }}: <a href=\"{{ unsubscribe_url }}\">stop</a></p>",
                       "sms": "Reply to {{ topic }}", "in_app_title": "Reply", "push_title": "Reply"},
                "fr": {"subject": "Réponse à {{ topic }}", "text": "Bonjour", "sms": "Réponse"}
            }
        }))
        .expect("template")
    }

    fn job(recipient: Recipient, channels: &[Channel]) -> Job {
        Job {
            recipient,
            channels: channels.to_vec(),
            template: "reply".into(),
            data: json!({"topic": "Rust"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            locale: None,
            key: "send:abc".into(),
            source: "send".into(),
            scope: None,
            ignore_quiet: false,
            shared: None,
        }
    }

    fn env() -> Env<'static> {
        Env {
            secret: b"s",
            public_url: "https://w.example/t/demo/p/messaging",
            default_locale: "en",
            now_ms: 12 * 3_600_000,
        }
    }

    fn contact() -> Contact {
        Contact {
            user: "u1".into(),
            name: "Ada".into(),
            email: Some("ada@example.org".into()),
            phone: Some("+14155550100".into()),
            push_tokens: vec!["tok-a".into(), "tok-b".into()],
            ..Contact::default()
        }
    }

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn a_user_gets_every_channel_with_links_and_stable_ids() {
        let j = job(Recipient::User("u1".into()), &Channel::ALL);
        let p = plan(&j, &template(), Some(&contact()), &env(), &none).expect("plan");
        let Step::Send(email) = &p.steps[0].1 else {
            panic!("email goes: {p:?}");
        };
        let (
            key,
            Outgoing::Email {
                to,
                subject,
                text,
                headers,
                ..
            },
        ) = &email[0]
        else {
            panic!("an email");
        };
        assert_eq!(
            (key.as_str(), to.as_str(), subject.as_str()),
            ("send:abc:email", "ada@example.org", "New reply to Rust")
        );
        assert!(
            text.starts_with("Ada: stop (https://w.example/t/demo/p/messaging/u/"),
            "{text}"
        );
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "List-Unsubscribe-Post" && v == "List-Unsubscribe=One-Click")
        );
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "Message-ID" && v == "<send.abc.email@messaging.weft>")
        );
        let Step::Send(push) = &p.steps[2].1 else {
            panic!("push goes");
        };
        assert_eq!(push.len(), 2, "one per device");
        assert!(matches!(p.steps[3].1, Step::Send(_)));
    }

    #[test]
    fn suppressions_preferences_and_addresses_skip_channels() {
        let j = job(Recipient::User("u1".into()), &Channel::ALL);
        // The user unsubscribed from everything: every channel stops.
        let all = |k: &str| k == "sup:all:u:u1";
        let p = plan(&j, &template(), Some(&contact()), &env(), &all).expect("plan");
        assert!(
            p.steps
                .iter()
                .all(|(_, s)| *s == Step::Skip("unsubscribed")),
            "{p:?}"
        );
        // Only the address: email stops, the rest goes.
        let addr = |k: &str| k == "sup:all:e:ada@example.org";
        let p = plan(&j, &template(), Some(&contact()), &env(), &addr).expect("plan");
        assert_eq!(p.steps[0].1, Step::Skip("unsubscribed"));
        assert!(matches!(p.steps[1].1, Step::Send(_)));
        let mut c = contact();
        c.channels.insert("sms".into(), false);
        c.phone = None;
        c.push_tokens.clear();
        let p = plan(&j, &template(), Some(&c), &env(), &none).expect("plan");
        assert_eq!(p.steps[1].1, Step::Skip("no_address"));
        assert_eq!(p.steps[2].1, Step::Skip("no_address"));
        c.phone = Some("+14155550100".into());
        let p = plan(&j, &template(), Some(&c), &env(), &none).expect("plan");
        assert_eq!(p.steps[1].1, Step::Skip("preference_off"));
        // A raw address gets email only.
        let raw = job(
            Recipient::Email("bob@example.org".into()),
            &[Channel::Email, Channel::Sms],
        );
        let p = plan(&raw, &template(), None, &env(), &none).expect("plan");
        assert!(matches!(p.steps[0].1, Step::Send(_)));
        assert_eq!(p.steps[1].1, Step::Skip("no_address"));
    }

    #[test]
    fn a_list_scope_is_checked_besides_all() {
        let mut j = job(
            Recipient::Email("bob@example.org".into()),
            &[Channel::Email],
        );
        j.scope = Some("list:news".into());
        let list = |k: &str| k == "sup:list:news:e:bob@example.org";
        let p = plan(&j, &template(), None, &env(), &list).expect("plan");
        assert_eq!(p.steps[0].1, Step::Skip("unsubscribed"));
        j.scope = Some("list:other".into());
        assert!(matches!(
            plan(&j, &template(), None, &env(), &list)
                .expect("plan")
                .steps[0]
                .1,
            Step::Send(_)
        ));
    }

    #[test]
    fn quiet_hours_defer_unless_urgent_or_released() {
        let mut c = contact();
        c.quiet_hours = Some(QuietHours {
            start: "11:00".into(),
            end: "13:00".into(),
            utc_offset_minutes: 0,
            channels: vec![Channel::Sms],
        });
        let mut j = job(
            Recipient::User("u1".into()),
            &[Channel::Email, Channel::Sms],
        );
        let p = plan(&j, &template(), Some(&c), &env(), &none).expect("plan");
        assert!(matches!(p.steps[0].1, Step::Send(_)));
        assert_eq!(p.steps[1].1, Step::Defer(13 * 3_600_000));
        j.ignore_quiet = true;
        assert!(matches!(
            plan(&j, &template(), Some(&c), &env(), &none)
                .expect("plan")
                .steps[1]
                .1,
            Step::Send(_)
        ));
        let mut urgent = template();
        urgent.urgent = true;
        j.ignore_quiet = false;
        assert!(matches!(
            plan(&j, &urgent, Some(&c), &env(), &none)
                .expect("plan")
                .steps[1]
                .1,
            Step::Send(_)
        ));
    }

    #[test]
    fn shared_data_renders_under_the_jobs_own_and_is_folded_in_to_be_stored() {
        let t: Template = serde_json::from_value(json!({
            "name": "issue",
            "variants": {"en": {"subject": "{{ topic }} #{{ issue }}", "text": "To {{ recipient.email }}"}}
        }))
        .expect("template");
        let mut j = job(
            Recipient::Email("ada@example.org".into()),
            &[Channel::Email],
        );
        j.shared = Some(minijinja::Value::from_serialize(
            json!({"topic": "Go", "issue": 7}),
        ));
        let p = plan(&j, &t, None, &env(), &none).expect("plan");
        let Step::Send(email) = &p.steps[0].1 else {
            panic!("email goes: {p:?}");
        };
        let Outgoing::Email { subject, text, .. } = &email[0].1 else {
            panic!("an email: {email:?}");
        };
        // The job's own `topic` wins over the shared one.
        assert_eq!(
            (subject.as_str(), text.as_str()),
            ("Rust #7", "To ada@example.org")
        );
        let stored = j.folded();
        assert!(stored.shared.is_none());
        assert_eq!(
            Value::Object(stored.data.clone()),
            json!({"topic": "Rust", "issue": 7})
        );
        assert_eq!(plan(&stored, &t, None, &env(), &none).expect("plan"), p);
    }

    #[test]
    fn the_contacts_locale_and_missing_variables() {
        let mut c = contact();
        c.locale = Some("fr-CA".into());
        let j = job(Recipient::User("u1".into()), &[Channel::Email]);
        let p = plan(&j, &template(), Some(&c), &env(), &none).expect("plan");
        assert_eq!(p.locale, "fr");
        let mut j = job(Recipient::User("u1".into()), &[Channel::Email]);
        j.data.clear();
        let err =
            plan(&j, &template(), Some(&contact()), &env(), &none).expect_err("topic missing");
        assert!(
            matches!(err, Refusal::Render(RenderError::MissingVariable { ref name, .. }) if name == "topic")
        );
        // Skipped channels are not rendered: no error for them.
        let all = |_: &str| true;
        assert!(plan(&j, &template(), Some(&contact()), &env(), &all).is_ok());
    }
}
