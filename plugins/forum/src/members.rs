//! Who is calling and what they may do: member records, trust levels,
//! moderators and bans.
//!
//! A member record (docs `members`, by user key) is made the first time a
//! signed-in user posts, reads a topic or is appointed or banned. It keeps
//! the counts trust levels are computed from; the trust level itself is
//! computed on every read, so a change of the tenant's thresholds applies
//! at once.
//!
//! Moderators are the tenant's admins and superadmins, plus the users an
//! admin appoints (`moderator: true` on their record). Moderators count as
//! trust level 4.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::{Op, Query};
use weft_sdk::{Principal, Request, Response, Role};

use crate::categories::{PostLevel, ReadLevel};
use crate::http::{self, Body, Result, forbidden, invalid, not_found};
use crate::ids::{check_user_id, now_ms, user_key};
use crate::settings::{self, Settings};
use crate::store::{self, Versioned, collections::MEMBERS};

/// A user as shown on posts and topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    pub name: String,
}

impl From<&Principal> for Author {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
        }
    }
}

/// A member record as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    pub user_id: String,
    pub name: String,
    pub topics: i64,
    pub posts: i64,
    pub reactions_received: i64,
    pub flags_against: i64,
    pub moderator: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointed_by: Option<Author>,
    pub banned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned_by: Option<Author>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned_at: Option<i64>,
    pub first_seen_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_posted_at: Option<i64>,
}

impl Member {
    /// A fresh record for `user_id`, first seen now.
    pub fn new(user_id: &str, name: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            first_seen_at: now_ms(),
            ..Self::default()
        }
    }
}

/// The trust level of a member with these counts: moderators are 4, then
/// 2 with `tl2_posts` posts and `tl2_reactions_received` reactions, 1 with
/// `tl1_posts` posts, else 0.
pub fn trust_level(posts: i64, reactions_received: i64, moderator: bool, s: &Settings) -> u8 {
    if moderator {
        4
    } else if posts >= s.tl2_posts && reactions_received >= s.tl2_reactions_received {
        2
    } else if posts >= s.tl1_posts {
        1
    } else {
        0
    }
}

/// The caller of one request, with what the forum knows about them.
#[derive(Debug)]
pub struct Viewer {
    pub principal: Option<Principal>,
    /// Their member record, if they have one (not read for admins).
    pub member: Option<Versioned<Member>>,
    pub admin: bool,
    pub moderator: bool,
}

impl Viewer {
    /// The caller of `req`; reads their member record unless they are
    /// anonymous or an admin (one docs read).
    pub fn load(req: &Request) -> Result<Self> {
        let Some(principal) = req.caller.clone() else {
            return Ok(Self {
                principal: None,
                member: None,
                admin: false,
                moderator: false,
            });
        };
        let admin = matches!(principal.role, Role::Admin | Role::Superadmin);
        let member = if admin {
            None
        } else {
            store::get::<Member>(MEMBERS, &user_key(&principal.id))?
        };
        let moderator = admin || member.as_ref().is_some_and(|m| m.value.moderator);
        Ok(Self {
            principal: Some(principal),
            member,
            admin,
            moderator,
        })
    }

    /// The signed-in caller (private routes always have one).
    pub fn user(&self) -> Result<&Principal> {
        self.principal
            .as_ref()
            .ok_or_else(|| Response::error(401, "unauthorized", "sign in to do this"))
    }

    /// The signed-in caller, if they may write: banned members get
    /// `403 banned` (admins cannot be banned).
    pub fn writer(&self) -> Result<&Principal> {
        let user = self.user()?;
        if !self.admin && self.member.as_ref().is_some_and(|m| m.value.banned) {
            return Err(Response::error(
                403,
                "banned",
                "you are banned from this forum",
            ));
        }
        Ok(user)
    }

    /// `403 forbidden` unless the caller moderates.
    pub fn require_moderator(&self) -> Result<()> {
        self.user()?;
        if self.moderator {
            Ok(())
        } else {
            Err(forbidden("only moderators may do this"))
        }
    }

    /// `403 forbidden` unless the caller is a tenant admin.
    pub fn require_admin(&self) -> Result<()> {
        self.user()?;
        if self.admin {
            Ok(())
        } else {
            Err(forbidden("only admins may do this"))
        }
    }

    /// The caller as an author.
    pub fn author(&self) -> Option<Author> {
        self.principal.as_ref().map(Author::from)
    }

    /// True if the caller is user `id`.
    pub fn is(&self, id: &str) -> bool {
        self.principal.as_ref().is_some_and(|p| p.id == id)
    }

    /// How much the caller may read.
    pub fn read_level(&self) -> ReadLevel {
        match (&self.principal, self.moderator) {
            (None, _) => ReadLevel::Public,
            (Some(_), false) => ReadLevel::Users,
            (Some(_), true) => ReadLevel::Moderators,
        }
    }

    /// True if the caller may read what `level` protects.
    pub fn can_read(&self, level: ReadLevel) -> bool {
        level <= self.read_level()
    }

    /// The caller's trust level (0 for anyone without a record).
    pub fn trust_level(&self, s: &Settings) -> u8 {
        let (posts, reactions) = self
            .member
            .as_ref()
            .map_or((0, 0), |m| (m.value.posts, m.value.reactions_received));
        trust_level(posts, reactions, self.moderator, s)
    }

    /// True if the caller may post where `level` is required.
    pub fn can_post(&self, level: PostLevel, s: &Settings) -> bool {
        self.principal.is_some()
            && match level {
                PostLevel::Users => true,
                PostLevel::Trusted => self.trust_level(s) >= 1,
                PostLevel::Moderators => self.moderator,
            }
    }

    /// Makes sure the caller has a member record (so that "new since your
    /// first visit" has a start), and returns it.
    pub fn ensure_member(&mut self) -> Result<Option<Member>> {
        let Some(principal) = self.principal.clone() else {
            return Ok(None);
        };
        if self.member.is_none() {
            let key = user_key(&principal.id);
            self.member = match store::get::<Member>(MEMBERS, &key)? {
                Some(found) => Some(found),
                None => {
                    let fresh = Member::new(&principal.id, &principal.name);
                    store::insert(MEMBERS, &key, &fresh)?;
                    Some(Versioned {
                        value: fresh,
                        version: 1,
                    })
                }
            };
        }
        Ok(self.member.as_ref().map(|m| m.value.clone()))
    }
}

/// Applies `change` to `user`'s member record, making it if needed.
/// `known` is the record the caller already read, if it read it.
pub fn update(
    user: &Author,
    known: Option<Versioned<Member>>,
    mut change: impl FnMut(&mut Member),
) -> Result<Member> {
    let key = user_key(&user.id);
    let known = match known {
        Some(k) => Some(k),
        None => store::get::<Member>(MEMBERS, &key)?,
    };
    let (_, new) = store::modify(MEMBERS, &key, known, |current| {
        let mut member = current
            .cloned()
            .unwrap_or_else(|| Member::new(&user.id, &user.name));
        change(&mut member);
        Ok(member)
    })?;
    Ok(new.value)
}

/// A member record as the API shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub trust_level: u8,
    pub moderator: bool,
    pub banned: bool,
    pub topics: i64,
    pub posts: i64,
    pub reactions_received: i64,
    pub flags_against: i64,
    pub first_seen_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_posted_at: Option<i64>,
}

impl MemberView {
    /// `member` as shown; `is_admin` for the tenant admins (moderators
    /// whatever their record says).
    pub fn new(member: &Member, is_admin: bool, s: &Settings) -> Self {
        let moderator = is_admin || member.moderator;
        Self {
            user_id: member.user_id.clone(),
            name: member.name.clone(),
            trust_level: trust_level(member.posts, member.reactions_received, moderator, s),
            moderator,
            banned: member.banned,
            topics: member.topics,
            posts: member.posts,
            reactions_received: member.reactions_received,
            flags_against: member.flags_against,
            first_seen_at: member.first_seen_at,
            last_posted_at: member.last_posted_at,
        }
    }
}

/// `GET /me`: the caller's record (as it would be, if they have none yet).
pub fn me(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let user = viewer.user()?;
    let member = match &viewer.member {
        Some(m) => m.value.clone(),
        None if viewer.admin => store::get::<Member>(MEMBERS, &user_key(&user.id))?
            .map_or_else(|| Member::new(&user.id, &user.name), |m| m.value),
        None => Member::new(&user.id, &user.name),
    };
    Ok(Response::json(
        200,
        &MemberView::new(&member, viewer.admin, &settings::get()?),
    ))
}

/// `GET /users/{id}`: a member's public record.
pub fn user(req: &Request) -> Result {
    let id = req.param("id").unwrap_or_default();
    let member = store::get::<Member>(MEMBERS, &user_key(id))?.ok_or_else(|| not_found("user"))?;
    Ok(Response::json(
        200,
        &MemberView::new(&member.value, false, &settings::get()?),
    ))
}

/// `GET /moderators`: the appointed moderators (tenant admins moderate
/// without being listed).
pub fn list_moderators(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.user()?;
    let s = settings::get()?;
    let (members, next) = page_where(req, "moderator")?;
    let moderators: Vec<MemberView> = members
        .iter()
        .map(|(_, m)| MemberView::new(m, false, &s))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "moderators": moderators, "next_cursor": next }),
    ))
}

/// A page of the members whose boolean `flag` is set (`moderator`,
/// `banned`), as `?limit=` and `?cursor=` of `req` ask.
pub fn page_where(req: &Request, flag: &str) -> Result<store::Page<Member>> {
    let cursor = http::cursor(req);
    let q = Query::new()
        .filter(flag, Op::Eq, true)
        .limit(http::page_limit(req, settings::get()?.page_size)?)
        .cursor(cursor.as_deref());
    store::query::<Member>(MEMBERS, &q, cursor.is_some())
}

/// `PUT /moderators/{user_id}` (admins): appoints a moderator. The body may
/// give the user's display name (`{"name": "..."}`) for a user the forum has
/// not seen yet.
pub fn appoint(req: &Request) -> Result {
    set_moderator(req, true)
}

/// `DELETE /moderators/{user_id}` (admins): ends an appointment.
pub fn dismiss(req: &Request) -> Result {
    set_moderator(req, false)
}

fn set_moderator(req: &Request, moderator: bool) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_admin()?;
    let user_id = req.param("user_id").unwrap_or_default();
    check_user_id(user_id).map_err(|why| invalid("user_id", &why))?;
    let body = Body::parse(req)?;
    let name = body
        .opt_str("name")?
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 100) {
        return Err(invalid("name", "must be at most 100 characters"));
    }
    let key = user_key(user_id);
    let known = store::get::<Member>(MEMBERS, &key)?;
    if !moderator && !known.as_ref().is_some_and(|m| m.value.moderator) {
        return Err(not_found("moderator"));
    }
    let target = Author {
        id: user_id.to_owned(),
        name: name
            .map(str::to_owned)
            .or_else(|| known.as_ref().map(|m| m.value.name.clone()))
            .unwrap_or_else(|| user_id.to_owned()),
    };
    let appointer = viewer.author();
    let member = update(&target, known, |m| {
        m.moderator = moderator;
        m.appointed_by = if moderator { appointer.clone() } else { None };
        if let Some(name) = name {
            m.name = name.to_owned();
        }
    })?;
    Ok(Response::json(
        200,
        &MemberView::new(&member, false, &settings::get()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_levels_follow_the_thresholds() {
        let s = Settings::default();
        assert_eq!(trust_level(0, 0, false, &s), 0);
        assert_eq!(trust_level(2, 50, false, &s), 0);
        assert_eq!(trust_level(3, 0, false, &s), 1);
        assert_eq!(trust_level(20, 9, false, &s), 1);
        assert_eq!(trust_level(19, 10, false, &s), 1);
        assert_eq!(trust_level(20, 10, false, &s), 2);
        assert_eq!(trust_level(0, 0, true, &s), 4);
        let strict = Settings {
            tl1_posts: 10,
            ..Settings::default()
        };
        assert_eq!(trust_level(3, 0, false, &strict), 0);
    }

    fn viewer(role: Option<Role>, member: Option<Member>) -> Viewer {
        let principal = role.map(|role| Principal {
            id: "u1".into(),
            name: "Ann".into(),
            role,
            kind: weft_sdk::CredentialKind::Session,
        });
        let admin = matches!(role, Some(Role::Admin | Role::Superadmin));
        let moderator = admin || member.as_ref().is_some_and(|m| m.moderator);
        Viewer {
            principal,
            member: member.map(|value| Versioned { value, version: 1 }),
            admin,
            moderator,
        }
    }

    #[test]
    fn read_and_post_levels() {
        let s = Settings::default();
        let anon = viewer(None, None);
        let user = viewer(Some(Role::User), None);
        let admin = viewer(Some(Role::Admin), None);
        let appointed = viewer(
            Some(Role::User),
            Some(Member {
                moderator: true,
                ..Member::default()
            }),
        );
        assert!(anon.can_read(ReadLevel::Public) && !anon.can_read(ReadLevel::Users));
        assert!(user.can_read(ReadLevel::Users) && !user.can_read(ReadLevel::Moderators));
        assert!(admin.can_read(ReadLevel::Moderators));
        assert!(appointed.can_read(ReadLevel::Moderators));
        assert!(!anon.can_post(PostLevel::Users, &s));
        assert!(user.can_post(PostLevel::Users, &s));
        assert!(!user.can_post(PostLevel::Trusted, &s));
        assert!(appointed.can_post(PostLevel::Trusted, &s));
        assert!(!user.can_post(PostLevel::Moderators, &s));
        assert!(admin.can_post(PostLevel::Moderators, &s));
        let trusted = viewer(
            Some(Role::User),
            Some(Member {
                posts: 3,
                ..Member::default()
            }),
        );
        assert!(trusted.can_post(PostLevel::Trusted, &s));
    }

    #[test]
    fn banned_members_cannot_write_but_admins_can() {
        let banned = Member {
            banned: true,
            ..Member::default()
        };
        let err = viewer(Some(Role::User), Some(banned.clone()))
            .writer()
            .expect_err("banned");
        assert_eq!(err.status, 403);
        assert!(viewer(Some(Role::Admin), Some(banned)).writer().is_ok());
        assert_eq!(
            viewer(None, None)
                .writer()
                .map(|_| ())
                .expect_err("anon")
                .status,
            401
        );
    }
}
