//! The fencing token a sync's commits carry (see [`super::StateStore::fenced`]).

/// The lease a sync of `source` runs under: `holder` got it with `epoch`. A commit made under
/// a fence whose lease row no longer matches is refused ([`super::StateError::Fenced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The source the lease is for (operations on other sources are not fenced).
    pub source: String,
    /// The replica holding it.
    pub holder: String,
    /// The lease's epoch (grows with every grant).
    pub epoch: i64,
}
