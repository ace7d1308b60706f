//! Categories (docs `categories`, by slug): where topics live and who may
//! read and post there.
//!
//! A category the caller may not read does not exist for them: every route
//! answers `404 not_found` for it, and lists leave it out.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::Query;
use weft_sdk::{Request, Response};

use crate::http::{self, Body, Result, conflict, invalid, not_found};
use crate::ids::{check_slug, now_ms, slugify};
use crate::members::Viewer;
use crate::settings;
use crate::store::{self, Versioned, collections::CATEGORIES};

/// Who may read a category's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadLevel {
    /// Anyone, signed in or not.
    Public,
    /// Signed-in users.
    Users,
    /// Moderators only.
    Moderators,
}

impl ReadLevel {
    /// The number search filters on (`read_level lte` the caller's).
    pub fn rank(self) -> i64 {
        match self {
            ReadLevel::Public => 0,
            ReadLevel::Users => 1,
            ReadLevel::Moderators => 2,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "users" => Some(Self::Users),
            "moderators" => Some(Self::Moderators),
            _ => None,
        }
    }
}

/// Who may start topics and reply in a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostLevel {
    /// Any signed-in user.
    Users,
    /// Trust level 1 and up.
    Trusted,
    /// Moderators only.
    Moderators,
}

impl PostLevel {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "users" => Some(Self::Users),
            "trusted" => Some(Self::Trusted),
            "moderators" => Some(Self::Moderators),
            _ => None,
        }
    }

    /// Why a caller may not post here, for the `403`.
    pub fn refusal(self) -> &'static str {
        match self {
            PostLevel::Users => "sign in to post here",
            PostLevel::Trusted => "posting here needs trust level 1",
            PostLevel::Moderators => "only moderators may post here",
        }
    }
}

/// A category as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Category {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub position: i64,
    pub read: ReadLevel,
    pub post: PostLevel,
    /// Topics not deleted.
    #[serde(default)]
    pub topic_count: i64,
    #[serde(default)]
    pub created_at: i64,
}

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 2000;

/// The fields of a create or patch body, checked. `None`: not given.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    name: Option<String>,
    description: Option<String>,
    position: Option<i64>,
    read: Option<ReadLevel>,
    post: Option<PostLevel>,
}

fn read_changes(body: &Body) -> Result<Changes> {
    let name = body
        .opt_str("name")?
        .map(|n| {
            let n = n.trim();
            match n.chars().count() {
                0 => Err(invalid("name", "must not be empty")),
                c if c > MAX_NAME => Err(invalid("name", "must be at most 100 characters")),
                _ => Ok(n.to_owned()),
            }
        })
        .transpose()?;
    let description = body
        .opt_str("description")?
        .map(|d| {
            if d.chars().count() > MAX_DESCRIPTION {
                Err(invalid("description", "must be at most 2000 characters"))
            } else {
                Ok(d.trim().to_owned())
            }
        })
        .transpose()?;
    let read = body
        .opt_str("read")?
        .map(|r| {
            ReadLevel::parse(r)
                .ok_or_else(|| invalid("read", "must be public, users or moderators"))
        })
        .transpose()?;
    let post = body
        .opt_str("post")?
        .map(|p| {
            PostLevel::parse(p)
                .ok_or_else(|| invalid("post", "must be users, trusted or moderators"))
        })
        .transpose()?;
    Ok(Changes {
        name,
        description,
        position: body.opt_i64("position")?,
        read,
        post,
    })
}

/// Category `id` if it exists and `viewer` may read it.
pub fn readable(viewer: &Viewer, id: &str) -> Result<Option<Versioned<Category>>> {
    if check_slug(id).is_err() {
        return Ok(None);
    }
    Ok(store::get::<Category>(CATEGORIES, id)?.filter(|c| viewer.can_read(c.value.read)))
}

/// Every category (a forum has tens, so one page holds them).
pub fn all() -> Result<Vec<Category>> {
    let (items, _) = store::query::<Category>(CATEGORIES, &Query::new().limit(1000), false)?;
    Ok(items.into_iter().map(|(_, c)| c).collect())
}

/// The read level of category `id` among `categories`; a missing category
/// is for moderators only.
pub fn read_level_of(categories: &[Category], id: &str) -> ReadLevel {
    categories
        .iter()
        .find(|c| c.id == id)
        .map_or(ReadLevel::Moderators, |c| c.read)
}

/// Categories in display order: by position, then name, then id.
fn sort(categories: &mut [Category]) {
    categories.sort_by(|a, b| {
        (a.position, a.name.to_lowercase(), &a.id).cmp(&(b.position, b.name.to_lowercase(), &b.id))
    });
}

/// `GET /categories`: those the caller may read, in display order.
pub fn list(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let s = settings::get()?;
    let limit = http::page_limit(req, s.page_size)? as usize;
    let offset = http::parse_number_cursor(http::cursor(req).as_deref())? as usize;
    let mut categories: Vec<Category> = all()?
        .into_iter()
        .filter(|c| viewer.can_read(c.read))
        .collect();
    sort(&mut categories);
    let page: Vec<&Category> = categories.iter().skip(offset).take(limit).collect();
    let end = offset + page.len();
    let next = (end < categories.len()).then(|| http::number_cursor(end as u32));
    Ok(Response::json(
        200,
        &json!({ "categories": page, "next_cursor": next }),
    ))
}

/// `GET /categories/{id}`.
pub fn get(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    let id = req.param("id").unwrap_or_default();
    let category = readable(&viewer, id)?.ok_or_else(|| not_found("category"))?;
    Ok(Response::json(200, &category.value))
}

/// `POST /categories` (admins): `{id?, name, description?, position?,
/// read?, post?}`; the id defaults to the name made a slug.
pub fn create(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_admin()?;
    let body = Body::parse(req)?;
    let changes = read_changes(&body)?;
    let name = changes.name.ok_or_else(|| invalid("name", "is required"))?;
    let id = match body.opt_str("id")? {
        Some(id) => id.to_owned(),
        None => slugify(&name),
    };
    check_slug(&id).map_err(|why| invalid("id", &why))?;
    let category = Category {
        id: id.clone(),
        name,
        description: changes.description.unwrap_or_default(),
        position: changes.position.unwrap_or(0),
        read: changes.read.unwrap_or(ReadLevel::Public),
        post: changes.post.unwrap_or(PostLevel::Users),
        topic_count: 0,
        created_at: now_ms(),
    };
    if !store::insert(CATEGORIES, &id, &category)? {
        return Err(conflict(
            "category_exists",
            &format!("category {id:?} already exists"),
        ));
    }
    Ok(Response::json(201, &category))
}

/// `PATCH /categories/{id}` (admins): any of `name, description, position,
/// read, post`.
///
/// Search results are filtered by a category's current read level as well
/// as by the level indexed with each post, so a stricter level applies at
/// once; a change of `read` starts a reindex that brings the index itself
/// up to date.
pub fn patch(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_admin()?;
    let id = req.param("id").unwrap_or_default();
    let changes = read_changes(&Body::parse(req)?)?;
    let current = readable(&viewer, id)?.ok_or_else(|| not_found("category"))?;
    let current_read = current.value.read;
    let (_, new) = store::modify(CATEGORIES, id, Some(current), |c| {
        let mut category = c.cloned().ok_or_else(|| not_found("category"))?;
        if let Some(name) = &changes.name {
            category.name.clone_from(name);
        }
        if let Some(description) = &changes.description {
            category.description.clone_from(description);
        }
        if let Some(position) = changes.position {
            category.position = position;
        }
        if let Some(read) = changes.read {
            category.read = read;
        }
        if let Some(post) = changes.post {
            category.post = post;
        }
        Ok(category)
    })?;
    if changes.read.is_some_and(|read| read != current_read) {
        crate::search_index::category_read_changed()?;
    }
    Ok(Response::json(200, &new.value))
}

/// `DELETE /categories/{id}` (admins): only an empty category.
pub fn delete(req: &Request) -> Result {
    let viewer = Viewer::load(req)?;
    viewer.require_admin()?;
    let id = req.param("id").unwrap_or_default();
    let category = readable(&viewer, id)?.ok_or_else(|| not_found("category"))?;
    if category.value.topic_count > 0 {
        return Err(conflict(
            "category_not_empty",
            &format!(
                "category {id:?} has {} topics; move or delete them first",
                category.value.topic_count
            ),
        ));
    }
    weft_sdk::docs::delete(CATEGORIES, id)?;
    Ok(Response::json(200, &json!({ "id": id, "deleted": true })))
}

/// Adds `delta` to the topic count of category `id` (if it still exists).
pub fn count_topics(id: &str, delta: i64) -> Result<()> {
    let Some(current) = store::get::<Category>(CATEGORIES, id)? else {
        return Ok(());
    };
    store::modify(CATEGORIES, id, Some(current), |c| {
        let mut category = c.cloned().ok_or_else(|| not_found("category"))?;
        category.topic_count = (category.topic_count + delta).max(0);
        Ok(category)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(id: &str, name: &str, position: i64) -> Category {
        Category {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            position,
            read: ReadLevel::Public,
            post: PostLevel::Users,
            topic_count: 0,
            created_at: 0,
        }
    }

    #[test]
    fn levels_order_and_parse() {
        assert!(ReadLevel::Public < ReadLevel::Users && ReadLevel::Users < ReadLevel::Moderators);
        assert_eq!(ReadLevel::parse("users"), Some(ReadLevel::Users));
        assert_eq!(ReadLevel::parse("admins"), None);
        assert_eq!(PostLevel::parse("trusted"), Some(PostLevel::Trusted));
        assert_eq!(ReadLevel::Moderators.rank(), 2);
    }

    #[test]
    fn sorted_by_position_then_name() {
        let mut cats = vec![
            cat("b", "Beta", 1),
            cat("a", "alpha", 1),
            cat("z", "Zed", 0),
        ];
        sort(&mut cats);
        let ids: Vec<&str> = cats.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["z", "a", "b"]);
    }

    #[test]
    fn changes_are_validated() {
        let body = |json: &str| {
            let req = Request::new(weft_sdk::Method::Post, "/").with_body(json);
            Body::parse(&req).and_then(|b| read_changes(&b))
        };
        assert_eq!(
            body(r#"{"name":" General ","read":"users","post":"trusted","position":2}"#).ok(),
            Some(Changes {
                name: Some("General".into()),
                description: None,
                position: Some(2),
                read: Some(ReadLevel::Users),
                post: Some(PostLevel::Trusted),
            })
        );
        for bad in [
            r#"{"name":""}"#,
            r#"{"read":"everyone"}"#,
            r#"{"post":"admins"}"#,
            r#"{"position":"1"}"#,
        ] {
            assert_eq!(body(bad).map(|_| ()).expect_err(bad).status, 422, "{bad}");
        }
    }

    #[test]
    fn missing_categories_are_for_moderators() {
        let cats = vec![cat("a", "A", 0)];
        assert_eq!(read_level_of(&cats, "a"), ReadLevel::Public);
        assert_eq!(read_level_of(&cats, "gone"), ReadLevel::Moderators);
    }
}
