//! Compact object references and the ids the simulator shows for them.
//!
//! A tenant of 100,000 users cannot afford a `String` id and a hash-map entry per object, so an
//! object is a `u32` ([`ObjRef`]: kind in the top two bits, index below) and its GUID-shaped id is
//! *computed*: tenant prefix, namespace, two check groups and the index. Parsing recomputes the
//! check groups, so a random GUID never resolves to an object by accident.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What kind of directory object an [`ObjRef`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ObjKind {
    User,
    Group,
    ServicePrincipal,
}

/// A user, group or service principal, as kind + index packed in a `u32`.
///
/// Ordering is by kind, then index; member lists are kept sorted by it, which makes member paging
/// a binary search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjRef(u32);

const INDEX_BITS: u32 = 30;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

impl ObjRef {
    pub(crate) fn user(index: u32) -> Self {
        Self(index & INDEX_MASK)
    }

    pub(crate) fn group(index: u32) -> Self {
        Self((1 << INDEX_BITS) | (index & INDEX_MASK))
    }

    pub(crate) fn sp(index: u32) -> Self {
        Self((2 << INDEX_BITS) | (index & INDEX_MASK))
    }

    pub(crate) fn kind(self) -> ObjKind {
        match self.0 >> INDEX_BITS {
            0 => ObjKind::User,
            1 => ObjKind::Group,
            _ => ObjKind::ServicePrincipal,
        }
    }

    pub(crate) fn index(self) -> u32 {
        self.0 & INDEX_MASK
    }

    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    pub(crate) fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

/// Id namespaces (the second GUID group).
pub(crate) mod ns {
    pub(crate) const USER: u16 = 0x0001;
    pub(crate) const GROUP: u16 = 0x0002;
    pub(crate) const SERVICE_PRINCIPAL: u16 = 0x0003;
    pub(crate) const DIRECTORY_ROLE: u16 = 0x0004;
    pub(crate) const APP_ROLE: u16 = 0x0005;
    pub(crate) const APP_ID: u16 = 0x0006;
    pub(crate) const ORGANIZATION: u16 = 0x0007;
    pub(crate) const ROLE_TEMPLATE: u16 = 0x0008;
    pub(crate) const ADMIN_UNIT: u16 = 0x0009;
    pub(crate) const REQUEST: u16 = 0x000f;
    /// Tags inside base64 assignment ids.
    pub(crate) const APP_ROLE_ASSIGNMENT: u16 = 0x0a55;
    pub(crate) const ROLE_ASSIGNMENT: u16 = 0x04a5;
}

/// SplitMix64 finaliser: the one hash every derived value goes through.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic generator (SplitMix64), so datasets do not depend on `rand`'s
/// algorithm choice across versions.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Formats and parses the ids of one tenant.
#[derive(Debug, Clone)]
pub(crate) struct IdCodec {
    prefix: u32,
}

impl IdCodec {
    pub(crate) fn new(seed: u64, tenant: &str) -> Self {
        let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
        for b in tenant.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            prefix: (mix(h) >> 32) as u32,
        }
    }

    fn checks(&self, namespace: u16, index: u64) -> (u16, u16) {
        let h = mix((u64::from(self.prefix) << 32) ^ (u64::from(namespace) << 48) ^ index);
        ((h & 0x0fff) as u16, 0x8000 | ((h >> 16) & 0x3fff) as u16)
    }

    /// `pppppppp-nnnn-4ccc-8ccc-iiiiiiiiiiii`.
    pub(crate) fn format(&self, namespace: u16, index: u64) -> String {
        let (a, b) = self.checks(namespace, index);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            self.prefix,
            namespace,
            a,
            b,
            index & 0xffff_ffff_ffff
        )
    }

    /// The namespace and index of an id this codec formatted, `None` for anything else.
    pub(crate) fn parse(&self, id: &str) -> Option<(u16, u64)> {
        let mut parts = id.split('-');
        let (p, n, a, b, i) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if parts.next().is_some()
            || p.len() != 8
            || n.len() != 4
            || a.len() != 4
            || b.len() != 4
            || i.len() != 12
        {
            return None;
        }
        let prefix = u32::from_str_radix(p, 16).ok()?;
        let namespace = u16::from_str_radix(n, 16).ok()?;
        let index = u64::from_str_radix(i, 16).ok()?;
        if prefix != self.prefix {
            return None;
        }
        let (ca, cb) = self.checks(namespace, index);
        let a = a.strip_prefix('4')?;
        (u16::from_str_radix(a, 16).ok()? == ca && u16::from_str_radix(b, 16).ok()? == cb)
            .then_some((namespace, index))
    }

    pub(crate) fn obj_id(&self, obj: ObjRef) -> String {
        let namespace = match obj.kind() {
            ObjKind::User => ns::USER,
            ObjKind::Group => ns::GROUP,
            ObjKind::ServicePrincipal => ns::SERVICE_PRINCIPAL,
        };
        self.format(namespace, u64::from(obj.index()))
    }

    /// The object an id names, if it is shaped like one (existence is the directory's business).
    pub(crate) fn parse_obj(&self, id: &str) -> Option<ObjRef> {
        let (namespace, index) = self.parse(id)?;
        let index = u32::try_from(index).ok().filter(|i| *i <= INDEX_MASK)?;
        match namespace {
            ns::USER => Some(ObjRef::user(index)),
            ns::GROUP => Some(ObjRef::group(index)),
            ns::SERVICE_PRINCIPAL => Some(ObjRef::sp(index)),
            _ => None,
        }
    }

    /// Opaque base64url ids like Graph's appRoleAssignment ids
    /// (`-WmtM5na7Uus0D8kI1yylpU9Mdo0Pb9OoBJvd3T5eKc`, serviceprincipal-post-approleassignedto.md).
    pub(crate) fn format_opaque(&self, tag: u16, seq: u32) -> String {
        let check = mix(u64::from(self.prefix) ^ (u64::from(tag) << 40) ^ u64::from(seq));
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&self.prefix.to_be_bytes());
        bytes[4..6].copy_from_slice(&tag.to_be_bytes());
        bytes[6..10].copy_from_slice(&seq.to_be_bytes());
        bytes[10..16].copy_from_slice(&check.to_be_bytes()[..6]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn parse_opaque(&self, tag: u16, id: &str) -> Option<u32> {
        let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
        if bytes.len() != 16 || bytes[..4] != self.prefix.to_be_bytes() {
            return None;
        }
        if bytes[4..6] != tag.to_be_bytes() {
            return None;
        }
        let seq = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        let check = mix(u64::from(self.prefix) ^ (u64::from(tag) << 40) ^ u64::from(seq));
        (bytes[10..16] == check.to_be_bytes()[..6]).then_some(seq)
    }
}

/// Wraps state in an opaque, URL-safe token (skip tokens, delta tokens, access tokens).
pub(crate) fn encode_token(plain: &str) -> String {
    URL_SAFE_NO_PAD.encode(plain.as_bytes())
}

/// The state inside a token from [`encode_token`], `None` if it is not one.
pub(crate) fn decode_token(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_guids_do_not_resolve() {
        let codec = IdCodec::new(7, "contoso");
        for obj in [ObjRef::user(0), ObjRef::group(12), ObjRef::sp(99_999)] {
            let id = codec.obj_id(obj);
            assert_eq!(id.len(), 36);
            assert_eq!(codec.parse_obj(&id), Some(obj));
            assert_eq!(codec.parse_obj(&id.to_uppercase()), Some(obj));
        }
        assert_eq!(
            codec.parse_obj("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"),
            None
        );
        let other = IdCodec::new(8, "contoso");
        assert_eq!(other.parse_obj(&codec.obj_id(ObjRef::user(1))), None);
        let opaque = codec.format_opaque(ns::APP_ROLE_ASSIGNMENT, 41);
        assert_eq!(
            codec.parse_opaque(ns::APP_ROLE_ASSIGNMENT, &opaque),
            Some(41)
        );
        assert_eq!(codec.parse_opaque(ns::ROLE_ASSIGNMENT, &opaque), None);
    }
}
