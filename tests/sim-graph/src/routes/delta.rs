//! `GET /users/delta` and `/groups/delta` (concepts/delta-query-overview.md,
//! delta-query-groups.md, api/user-delta.md, api/group-delta.md).
//!
//! A round of change tracking is a sequence of pages linked by `@odata.nextLink`
//! (`$skiptoken`) ending in a page with `@odata.deltaLink` (`$deltatoken`), never both.
//! The delta token is a change-log position: the next round returns what the log recorded
//! after it. State, including `$select`, travels inside the tokens ("The state tokens also
//! encode and include other query parameters (such as `$select`)").

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::Call;
use crate::directory::{Change, Directory, Rel};
use crate::ids::{ObjKind, ObjRef, decode_token, encode_token};
use crate::query::Filter;
use crate::render::{self, GroupView, Select, UserView};
use crate::reply::{Reply, error, not_implemented, unsupported_query};
use crate::state::Shared;

/// Users per page (the docs leave page sizes to the service; `$top` is not supported).
pub(crate) const USER_PAGE: usize = 200;
/// Groups per page.
pub(crate) const GROUP_PAGE: usize = 100;
/// Member references per page; a group with more members is split over several pages, and
/// appears on each (delta-query-groups.md, "Paging through members in a large group").
pub(crate) const MEMBER_BUDGET: usize = 1_000;
/// `$filter=id eq … or …` limit (group-delta.md: "There is a limit of 50 filtered objects").
const FILTER_LIMIT: usize = 50;

#[derive(Debug, Clone, PartialEq)]
struct Round {
    users: bool,
    select: Select,
    filter: Option<Vec<u32>>,
    /// Change-log position the round reports changes after; `None` for the initial sync.
    from: Option<u64>,
    /// Change-log position the round's deltaLink will carry.
    to: u64,
    /// Position in the candidate list (initial) or the changed-object list.
    cursor: u64,
    /// Member offset inside the cursor group (initial group sync only).
    offset: u64,
}

fn enc_select(select: &Select) -> String {
    match select {
        Select::Default => "*".to_owned(),
        Select::Fields(f) => f.join(","),
    }
}

fn dec_select(text: &str) -> Select {
    if text == "*" {
        Select::Default
    } else {
        Select::Fields(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

fn enc_filter(filter: &Option<Vec<u32>>) -> String {
    match filter {
        None => "*".to_owned(),
        Some(ids) => ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
    }
}

fn dec_filter(text: &str) -> Option<Option<Vec<u32>>> {
    if text == "*" {
        return Some(None);
    }
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u32>>>()
        .map(Some)
}

fn res(users: bool) -> &'static str {
    if users { "users" } else { "groups" }
}

impl Round {
    fn skiptoken(&self) -> String {
        encode_token(&format!(
            "s|{}|{}|{}|{}|{}|{}|{}",
            res(self.users),
            self.from.map_or("-".to_owned(), |f| f.to_string()),
            self.to,
            self.cursor,
            self.offset,
            enc_filter(&self.filter),
            enc_select(&self.select),
        ))
    }

    fn from_skiptoken(token: &str) -> Option<Self> {
        let plain = decode_token(token)?;
        let mut p = plain.splitn(8, '|');
        if p.next()? != "s" {
            return None;
        }
        let users = p.next()? == "users";
        let from = match p.next()? {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        Some(Self {
            users,
            from,
            to: p.next()?.parse().ok()?,
            cursor: p.next()?.parse().ok()?,
            offset: p.next()?.parse().ok()?,
            filter: dec_filter(p.next()?)?,
            select: dec_select(p.next()?),
        })
    }
}

/// What a `$deltatoken` holds.
struct DeltaToken {
    users: bool,
    seq: u64,
    epoch: u32,
    issued_ms: u64,
    filter: Option<Vec<u32>>,
    select: Select,
}

impl DeltaToken {
    fn encode(&self) -> String {
        encode_token(&format!(
            "t|{}|{}|{}|{}|{}|{}",
            res(self.users),
            self.seq,
            self.epoch,
            self.issued_ms,
            enc_filter(&self.filter),
            enc_select(&self.select),
        ))
    }

    fn decode(token: &str) -> Option<Self> {
        let plain = decode_token(token)?;
        let mut p = plain.splitn(7, '|');
        if p.next()? != "t" {
            return None;
        }
        Some(Self {
            users: p.next()? == "users",
            seq: p.next()?.parse().ok()?,
            epoch: p.next()?.parse().ok()?,
            issued_ms: p.next()?.parse().ok()?,
            filter: dec_filter(p.next()?)?,
            select: dec_select(p.next()?),
        })
    }
}

/// errors.md: `syncStateNotFound` "The sync state generation is not found. The delta token is
/// expired and data must be synchronized again."; delta-query-overview.md "Token duration":
/// expired tokens get "a 40X-series error with error codes such as syncStateNotFound".
fn sync_state_not_found() -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

/// The answer of a link invalidated with `status` and `code`. delta-query-overview.md
/// "Synchronization reset": 410 and a Location header with an empty `$deltaToken`; errors.md
/// gives the messages of `resyncRequired`, `syncStateInvalid` and `syncStateNotFound`.
fn dead_link(call: &Call, users: bool, status: u16, code: &str) -> Reply {
    let message = match code {
        "syncStateNotFound" => {
            "The sync state generation is not found. The delta token is expired and data must be synchronized again."
        }
        "syncStateInvalid" => {
            "The sync state generation is invalid. The delta token is invalid and data must be synchronized again."
        }
        _ => "The delta token is no longer valid, and the app must reset the sync state.",
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::GONE);
    let reply = error(status, code, message);
    if status == StatusCode::GONE {
        reply.with_header(
            "Location",
            format!("{}/v1.0/{}/delta?$deltatoken=", call.origin, res(users)),
        )
    } else {
        reply
    }
}

fn tracked(select: &Select, rel: Rel) -> bool {
    // delta-query-groups.md: members@delta is included "by default, when the $select query
    // parameter has not been specified, or when $expand=members"; group-delta.md: other
    // directoryObject relationships (owners) when selected.
    match (select, rel) {
        (Select::Default, Rel::Members) => true,
        (Select::Default, Rel::Owners) => false,
        (fields, rel) => fields.has(rel.name()),
    }
}

/// Whether a relationship member shows in `members@delta` / `owners@delta`. The delta docs say
/// nothing about service principals; v1.0 leaves them out of the `members` and `owners` it
/// tracks (group-list-members.md, known-issues.md, group-list-owners.md), so the simulator leaves
/// them out here too [UNCONFIRMED for delta]. A client must not depend on either.
fn shown_in_delta(obj: ObjRef) -> bool {
    obj.kind() != crate::ids::ObjKind::ServicePrincipal
}

fn reference(dir: &Directory, obj: ObjRef, removed: bool) -> Value {
    let mut map = Map::new();
    map.insert(
        "@odata.type".to_owned(),
        Value::from(render::odata_type(obj)),
    );
    map.insert("id".to_owned(), Value::from(dir.id(obj)));
    if removed {
        map.insert("@removed".to_owned(), json!({ "reason": "deleted" }));
    }
    Value::Object(map)
}

fn reply(call: &Call, users: bool, value: Vec<Value>, link: (&str, String)) -> Reply {
    let (name, token) = link;
    let param = if name == "@odata.nextLink" {
        "$skiptoken"
    } else {
        "$deltatoken"
    };
    let mut map = Map::new();
    map.insert(
        "@odata.context".to_owned(),
        Value::from(format!("{}/v1.0/$metadata#{}", call.origin, res(users))),
    );
    map.insert(
        name.to_owned(),
        Value::from(format!(
            "{}/v1.0/{}/delta?{param}={token}",
            call.origin,
            res(users)
        )),
    );
    map.insert("value".to_owned(), Value::Array(value));
    Reply::ok(Value::Object(map))
}

/// Parses the `$filter` delta supports: `id eq '…' or id eq '…'`, at most 50 objects.
fn id_filter(call: &Call, dir: &Directory, users: bool) -> Result<Option<Vec<u32>>, Reply> {
    let Some(text) = call.query.get("$filter") else {
        return Ok(None);
    };
    let ids = Filter::parse(text)
        .and_then(|f| f.id_list())
        .ok_or_else(|| {
            unsupported_query(
                "The only supported $filter on delta is id eq '<id>' (or several, joined by or).",
            )
        })?;
    if ids.len() > FILTER_LIMIT {
        return Err(unsupported_query(format!(
            "Too many objects in the filter: at most {FILTER_LIMIT} are supported."
        )));
    }
    let kind = if users { ObjKind::User } else { ObjKind::Group };
    let mut indexes: Vec<u32> = ids
        .iter()
        .filter_map(|id| dir.codec.parse_obj(id))
        .filter(|o| o.kind() == kind)
        .map(ObjRef::index)
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    Ok(Some(indexes))
}

/// The selection of an initial request, folding `$expand=members` into it.
fn initial_select(call: &Call) -> Select {
    let select = Select::parse(call.query.get("$select"));
    let expand_members = call.query.get("$expand").is_some_and(|e| {
        e.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("members"))
    });
    match select {
        Select::Fields(mut f) if expand_members && !f.iter().any(|x| x == "members") => {
            f.push("members".to_owned());
            Select::Fields(f)
        }
        other => other,
    }
}

pub(super) fn delta(shared: &Shared, call: &Call, users: bool) -> Reply {
    if call.query.get("$orderby").is_some() {
        return not_implemented("$orderby on delta");
    }
    let control = shared.delta_control();
    let dir = shared.read();
    let round = if let Some(token) = call.query.get("$skiptoken") {
        match Round::from_skiptoken(token) {
            Some(r) if r.users == users => r,
            _ => return sync_state_not_found(),
        }
    } else if let Some(token) = call.query.get("$deltatoken") {
        if token.eq_ignore_ascii_case("latest") {
            // "sync from now": a deltaLink and no resource data.
            let filter = match id_filter(call, &dir, users) {
                Ok(f) => f,
                Err(reply) => return reply,
            };
            let next = DeltaToken {
                users,
                seq: dir.seq(),
                epoch: control.epoch,
                issued_ms: shared.now_ms(),
                filter,
                select: initial_select(call),
            };
            return reply(call, users, Vec::new(), ("@odata.deltaLink", next.encode()));
        }
        let Some(old) = DeltaToken::decode(token).filter(|t| t.users == users) else {
            return sync_state_not_found();
        };
        if old.epoch < control.epoch {
            return dead_link(call, users, control.status, &control.code);
        }
        let ttl = u64::try_from(shared.config.delta_link_ttl.as_millis()).unwrap_or(u64::MAX);
        if shared.now_ms().saturating_sub(old.issued_ms) > ttl {
            return sync_state_not_found();
        }
        // delta-query-overview.md: `$select` may be given again with a deltaLink to change
        // the tracked properties.
        let select = match call.query.get("$select") {
            Some(_) => initial_select(call),
            None => old.select,
        };
        Round {
            users,
            select,
            filter: old.filter,
            from: Some(old.seq.min(dir.seq())),
            to: dir.seq(),
            cursor: 0,
            offset: 0,
        }
    } else {
        let filter = match id_filter(call, &dir, users) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        Round {
            users,
            select: initial_select(call),
            filter,
            from: None,
            to: dir.seq(),
            cursor: 0,
            offset: 0,
        }
    };
    let (value, next) = match (round.from, users) {
        (None, true) => initial_users(&dir, &round),
        (None, false) => initial_groups(&dir, &round),
        (Some(from), true) => changed_users(&dir, &round, from),
        (Some(from), false) => changed_groups(&dir, &round, from),
    };
    match next {
        Some(next) => reply(call, users, value, ("@odata.nextLink", next.skiptoken())),
        None => {
            let token = DeltaToken {
                users,
                seq: round.to,
                epoch: control.epoch,
                issued_ms: shared.now_ms(),
                filter: round.filter.clone(),
                select: round.select.clone(),
            };
            reply(call, users, value, ("@odata.deltaLink", token.encode()))
        }
    }
}

fn candidates(round: &Round, len: usize) -> Vec<u32> {
    match &round.filter {
        Some(ids) => ids
            .iter()
            .copied()
            .filter(|i| (*i as usize) < len)
            .collect(),
        None => (0..len as u32).collect(),
    }
}

fn initial_users(dir: &Directory, round: &Round) -> (Vec<Value>, Option<Round>) {
    let list = candidates(round, dir.users.len());
    let mut value = Vec::new();
    let mut pos = round.cursor as usize;
    while pos < list.len() {
        let i = list[pos];
        if !dir.users[i as usize].removed {
            if value.len() == USER_PAGE {
                let next = Round {
                    cursor: pos as u64,
                    ..round.clone()
                };
                return (value, Some(next));
            }
            value.push(UserView::new(dir, i).render(&round.select, false));
        }
        pos += 1;
    }
    (value, None)
}

fn group_object(dir: &Directory, g: u32, select: &Select) -> Value {
    GroupView::new(dir, g).render(&select.without(&["members", "owners"]), false)
}

fn initial_groups(dir: &Directory, round: &Round) -> (Vec<Value>, Option<Round>) {
    let list = candidates(round, dir.groups.len());
    let members_tracked = tracked(&round.select, Rel::Members);
    let owners_tracked = tracked(&round.select, Rel::Owners);
    let mut value = Vec::new();
    let mut budget = MEMBER_BUDGET;
    let (mut pos, mut off) = (round.cursor as usize, round.offset as usize);
    while pos < list.len() {
        if value.len() >= GROUP_PAGE || budget == 0 {
            let next = Round {
                cursor: pos as u64,
                offset: off as u64,
                ..round.clone()
            };
            return (value, Some(next));
        }
        let g = list[pos];
        let mut obj = group_object(dir, g, &round.select);
        let members: Vec<ObjRef> = if members_tracked {
            dir.links(Rel::Members, g)
                .iter()
                .copied()
                .filter(|m| shown_in_delta(*m))
                .collect()
        } else {
            Vec::new()
        };
        let rest = members.get(off..).unwrap_or_default();
        let take = rest.len().min(budget);
        if let Value::Object(map) = &mut obj {
            if take > 0 {
                let refs = rest[..take]
                    .iter()
                    .map(|m| reference(dir, *m, false))
                    .collect();
                map.insert("members@delta".to_owned(), Value::Array(refs));
            }
            let owners: Vec<ObjRef> = dir
                .links(Rel::Owners, g)
                .iter()
                .copied()
                .filter(|o| shown_in_delta(*o))
                .collect();
            if owners_tracked && off == 0 && !owners.is_empty() {
                let refs = owners.iter().map(|o| reference(dir, *o, false)).collect();
                map.insert("owners@delta".to_owned(), Value::Array(refs));
            }
        }
        value.push(obj);
        budget -= take;
        if take < rest.len() {
            off += take;
        } else {
            pos += 1;
            off = 0;
        }
    }
    (value, None)
}

fn window(dir: &Directory, from: u64, to: u64) -> &[Change] {
    let to = (to as usize).min(dir.changes.len());
    dir.changes
        .get((from as usize).min(to)..to)
        .unwrap_or_default()
}

fn allowed(round: &Round, index: u32) -> bool {
    round
        .filter
        .as_ref()
        .is_none_or(|ids| ids.binary_search(&index).is_ok())
}

fn changed_users(dir: &Directory, round: &Round, from: u64) -> (Vec<Value>, Option<Round>) {
    let changed: BTreeSet<u32> = window(dir, from, round.to)
        .iter()
        .filter_map(|c| match c {
            Change::User(i) => Some(*i),
            _ => None,
        })
        .filter(|i| allowed(round, *i))
        .collect();
    let all: Vec<u32> = changed.into_iter().collect();
    let start = (round.cursor as usize).min(all.len());
    let end = (start + USER_PAGE).min(all.len());
    let value = all[start..end]
        .iter()
        .map(|i| {
            if dir.users[*i as usize].removed {
                // delta-query-overview.md: "changed" = deleted and restorable from deletedItems.
                json!({ "id": dir.id(ObjRef::user(*i)), "@removed": { "reason": "changed" } })
            } else {
                UserView::new(dir, *i).render(&round.select, false)
            }
        })
        .collect();
    let next = (end < all.len()).then(|| Round {
        cursor: end as u64,
        ..round.clone()
    });
    (value, next)
}

fn changed_groups(dir: &Directory, round: &Round, from: u64) -> (Vec<Value>, Option<Round>) {
    let mut changed: BTreeMap<u32, BTreeSet<(Rel, ObjRef)>> = BTreeMap::new();
    for change in window(dir, from, round.to) {
        match *change {
            // "If a change occurs to a property that is not selected, the resource … does not
            // appear": membership changes only show when the relationship is tracked.
            Change::Link { rel, group, obj }
                if tracked(&round.select, rel) && shown_in_delta(obj) =>
            {
                changed.entry(group).or_default().insert((rel, obj));
            }
            _ => {}
        }
    }
    changed.retain(|g, _| allowed(round, *g));
    let start = (round.cursor as usize).min(changed.len());
    let page: Vec<(&u32, &BTreeSet<(Rel, ObjRef)>)> =
        changed.iter().skip(start).take(GROUP_PAGE).collect();
    let end = start + page.len();
    let value = page
        .into_iter()
        .map(|(g, links)| {
            let mut obj = group_object(dir, *g, &round.select);
            if let Value::Object(map) = &mut obj {
                for rel in [Rel::Members, Rel::Owners] {
                    let refs: Vec<Value> = links
                        .iter()
                        .filter(|(r, _)| *r == rel)
                        .map(|(_, o)| {
                            let present = dir.links(rel, *g).binary_search(o).is_ok();
                            reference(dir, *o, !present)
                        })
                        .collect();
                    if !refs.is_empty() {
                        map.insert(format!("{}@delta", rel.name()), Value::Array(refs));
                    }
                }
            }
            obj
        })
        .collect();
    let next = (end < changed.len()).then(|| Round {
        cursor: end as u64,
        ..round.clone()
    });
    (value, next)
}
