use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// What a caller may do. Ordered: a higher role includes the lower ones
/// within its tenant; `Superadmin` is the platform operator.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A tenant's ordinary user.
    User,
    /// A tenant's administrator.
    Admin,
    /// The platform operator.
    Superadmin,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Superadmin => "superadmin",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            "superadmin" => Some(Role::Superadmin),
            _ => None,
        }
    }
}

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A session token from `POST /v1/auth/login`.
    Session,
    /// An API key.
    ApiKey,
}

/// An authenticated caller.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// User id for sessions, key id for API keys.
    pub id: String,
    /// User's display name or key's label.
    pub name: String,
    /// The tenant the credential belongs to (`None` for a superadmin).
    pub tenant: Option<TenantId>,
    /// Slug of that tenant.
    pub tenant_slug: Option<String>,
    pub role: Role,
    pub kind: CredentialKind,
}

impl Principal {
    /// True if the caller may act on `tenant` with at least `role`.
    /// A superadmin may act on every tenant.
    pub fn can(&self, tenant: &TenantId, role: Role) -> bool {
        self.role == Role::Superadmin || (self.tenant.as_ref() == Some(tenant) && self.role >= role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, role: Role) -> Principal {
        Principal {
            id: "u".into(),
            name: "n".into(),
            tenant: Some(TenantId::from_raw(tenant)),
            tenant_slug: None,
            role,
            kind: CredentialKind::Session,
        }
    }

    #[test]
    fn roles_are_scoped_to_their_tenant() {
        let a = TenantId::from_raw("a");
        let b = TenantId::from_raw("b");
        assert!(principal("a", Role::Admin).can(&a, Role::User));
        assert!(principal("a", Role::Admin).can(&a, Role::Admin));
        assert!(!principal("a", Role::User).can(&a, Role::Admin));
        assert!(!principal("a", Role::Admin).can(&b, Role::User));
        let root = Principal {
            tenant: None,
            role: Role::Superadmin,
            ..principal("a", Role::User)
        };
        assert!(root.can(&b, Role::Admin));
    }
}
