//! Forward compatibility of the wire enums (1.x): every enum that crosses the plugin boundary
//! (capabilities, statuses, purposes, account types, error kinds) has an `Other` variant that
//! keeps a value this SDK does not know, as sent. A plugin built against a newer 1.x SDK may
//! advertise a capability or report a status an older host has never heard of: the older host
//! still loads it and syncs, reports the unknown values, and keeps them as they were sent.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Most distinct unknown names kept; any further one reads as `unknown`. Unknown names come
/// from a newer SDK's few new variants, so the bound is never reached by an honest plugin.
const MAX_UNKNOWN_NAMES: usize = 256;

/// A wire name this SDK does not know, as it was sent: a small handle (two bytes) into a
/// process-wide table, so the enums holding it stay `Copy` and small.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownName(u16);

impl UnknownName {
    /// Stands for every name beyond the table's bound.
    pub const UNKNOWN: UnknownName = UnknownName(0);

    /// The name as it was sent.
    pub fn as_str(self) -> &'static str {
        table()
            .lock()
            .ok()
            .and_then(|t| t.names.get(usize::from(self.0)).copied())
            .unwrap_or("unknown")
    }
}

impl std::fmt::Debug for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

struct Table {
    names: Vec<&'static str>,
    index: HashMap<&'static str, u16>,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        Mutex::new(Table {
            names: vec!["unknown"],
            index: HashMap::from([("unknown", 0)]),
        })
    })
}

/// The handle of `name`, kept once per distinct name.
pub(crate) fn intern(name: &str) -> UnknownName {
    let Ok(mut table) = table().lock() else {
        return UnknownName::UNKNOWN;
    };
    if let Some(&n) = table.index.get(name) {
        return UnknownName(n);
    }
    let Ok(n) = u16::try_from(table.names.len()) else {
        return UnknownName::UNKNOWN;
    };
    if table.names.len() >= MAX_UNKNOWN_NAMES {
        return UnknownName::UNKNOWN;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    table.names.push(leaked);
    table.index.insert(leaked, n);
    UnknownName(n)
}

/// Implements the wire form of an enum of unit variants plus `Other(&'static str)`: the
/// snake_case names below, serialized as a string; an unknown name deserializes as `Other`.
macro_rules! wire_enum {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The wire name (for `Other`, the name as it was sent).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                    $ty::Other(name) => name.as_str(),
                }
            }

            /// The value named `name` on the wire; a name this SDK does not know is kept as
            /// `Other(name)`.
            pub fn from_wire(name: &str) -> Self {
                match name {
                    $($name => $ty::$variant,)*
                    other => $ty::Other($crate::wire::intern(other)),
                }
            }

            /// Whether this SDK does not know the value (a newer 1.x plugin or host sent it).
            pub fn is_unknown(self) -> bool {
                matches!(self, $ty::Other(_))
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                Ok(Self::from_wire(&name))
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use crate::{AccountType, Capability, ErrorKind, Purpose, Status};

    #[test]
    fn unknown_names_round_trip_and_known_ones_stay_typed() {
        let status: Status = serde_json::from_str("\"suspended\"").expect("an unknown status");
        assert!(status.is_unknown());
        assert_eq!(status.as_str(), "suspended");
        assert_eq!(
            serde_json::to_string(&status).ok().as_deref(),
            Some("\"suspended\"")
        );
        let known: Status = serde_json::from_str("\"disabled\"").expect("a known status");
        assert_eq!(known, Status::Disabled);
        let caps: Vec<Capability> =
            serde_json::from_str("[\"grant\", \"teleport\"]").expect("capabilities");
        assert_eq!(caps[0], Capability::Grant);
        assert_eq!(caps[1], Capability::from_wire("teleport"));
        assert!(caps[1].is_unknown());
        let kind: ErrorKind = serde_json::from_str("\"quota_exhausted\"").expect("a kind");
        assert_eq!(kind.as_str(), "quota_exhausted");
        let purpose: Purpose = serde_json::from_str("\"delegation\"").expect("a purpose");
        assert!(purpose.is_unknown());
        let account: AccountType = serde_json::from_str("\"robot\"").expect("an account type");
        assert!(account.is_unknown());
        // A number is still refused: only names are forward compatible.
        assert!(serde_json::from_str::<Status>("3").is_err());
    }
}
