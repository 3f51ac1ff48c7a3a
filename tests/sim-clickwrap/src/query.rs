//! List parameters (`page`, `per_page`, `filter`, `sort`, `fields`, `no_count`, `lean`) and the
//! documented collection envelope.
//!
//! Source: reference/pagination ("limited to 25 by default … page through results with the page
//! and per_page parameters"; example `{"page":1,"per_page":25,"count":11,"total_count":11,
//! "has_more":false,"data":[…]}`; "Keep per_page no greater than 100"; "Utilize the has_more
//! property"), and the parameter lists of each list endpoint's reference page.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Default page size: "limited to 25 by default" (reference/pagination).
pub(crate) const DEFAULT_PER_PAGE: usize = 25;

/// Largest page served. [UNVERIFIED] reference/pagination only *recommends* "Keep per_page no
/// greater than 100" and documents no maximum or error. We clamp to 100 and echo the effective
/// `per_page` in the envelope: a client that loops on `has_more` and the echoed values works
/// either way, and one that assumes its requested page size fails here instead of in production.
pub(crate) const MAX_PER_PAGE: usize = 100;

/// Which optional parameters an endpoint documents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// `sort`, `fields`, `no_count` and `lean`: listed for `/sites` (reference/get_sites) and
    /// `/accounts/{id}/members` (reference/retrieve-user-memberships-for-an-account-1), **not** for
    /// `/sites/{id}/memberships` (reference/list-all-site-memberships-1 lists only page, per_page,
    /// expand, filter). Where undocumented they are ignored, as unknown parameters are.
    pub(crate) extras: bool,
}

/// One parsed list request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListQuery {
    /// 1-based ("Page number to offset results for pagination. Defaults to 1.").
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    pub(crate) filter: Vec<Clause>,
    /// Sort keys in priority order; empty means by id ascending.
    pub(crate) sort: Vec<SortKey>,
    pub(crate) fields: Option<Vec<String>>,
    pub(crate) no_count: bool,
}

/// `field<op>value`, one clause of a `filter` joined by `and`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clause {
    pub(crate) path: String,
    pub(crate) op: Op,
    pub(crate) literal: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortKey {
    pub(crate) path: String,
    pub(crate) descending: bool,
}

impl ListQuery {
    /// Parses the raw query string. Malformed values answer the documented 400.
    pub(crate) fn parse(raw: Option<&str>, params: Params) -> Result<Self, ApiError> {
        let mut q = ListQuery {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            filter: Vec::new(),
            sort: Vec::new(),
            fields: None,
            no_count: false,
        };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "page" => q.page = positive(&key, &value)?,
                "per_page" => q.per_page = positive(&key, &value)?.min(MAX_PER_PAGE),
                "filter" => q.filter = parse_filter(&value)?,
                // "Expands objects that only return an ID": memberships already embed the user
                // object the docs show, so there is nothing left to expand.
                "expand" => {}
                "sort" if params.extras => q.sort = parse_sort(&value)?,
                "fields" if params.extras => {
                    q.fields = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|f| !f.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                "no_count" if params.extras => q.no_count = boolean(&key, &value)?,
                // "lean … is used to reduce overhead and overall payload size"
                // (docs/retrieving-data-in-bulk). [UNVERIFIED] what it strips; the objects here
                // are already plain, so it is validated and otherwise changes nothing.
                "lean" if params.extras => {
                    boolean(&key, &value)?;
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// Index of the first item of the requested page.
    pub(crate) fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// Whether the order is plain id order, so a page is a slice of a sorted id list.
    pub(crate) fn id_order(&self) -> Option<bool> {
        match self.sort.as_slice() {
            [] => Some(false),
            [key] if key.path == "id" => Some(key.descending),
            _ => None,
        }
    }

    /// The collection envelope of reference/pagination. `count` is the number of items in this
    /// page. [UNVERIFIED] `no_count=true` "reduce[s] overhead" (docs/retrieving-data-in-bulk) by
    /// skipping the total count; we then leave `total_count` out entirely, so a client cannot
    /// mistake a placeholder for a real total. `has_more` is still exact.
    pub(crate) fn envelope(&self, total: usize, data: Vec<Value>) -> Value {
        let has_more = self.offset().saturating_add(data.len()) < total;
        let mut obj = Map::new();
        obj.insert("page".into(), json!(self.page));
        obj.insert("per_page".into(), json!(self.per_page));
        obj.insert("count".into(), json!(data.len()));
        if !self.no_count {
            obj.insert("total_count".into(), json!(total));
        }
        obj.insert("has_more".into(), json!(has_more));
        obj.insert("data".into(), Value::Array(data));
        Value::Object(obj)
    }

    /// Applies `fields` to one rendered item. [UNVERIFIED] `id` is always kept, as document
    /// stores do with projections; dotted paths keep the nesting (`profiles.provider`).
    pub(crate) fn project(&self, item: Value) -> Value {
        let Some(fields) = &self.fields else {
            return item;
        };
        let mut out = Value::Object(Map::new());
        copy_path(&item, "id", &mut out);
        for f in fields {
            copy_path(&item, f, &mut out);
        }
        out
    }
}

fn positive(key: &str, value: &str) -> Result<usize, ApiError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "{key} must be a positive integer; got `{value}`"
        ))),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{key} must be `true` or `false`; got `{value}`"
        ))),
    }
}

/// `field==value and field>=value` (parameter description on every list page: "Note the use of
/// 'and' between the fields. Example: `event_type==agreed and signer_id==claddy@ironcladapp.com`").
/// [UNVERIFIED] operators other than `==` and `>=` (only those two appear in the docs); values may
/// be quoted.
pub(crate) fn parse_filter(text: &str) -> Result<Vec<Clause>, ApiError> {
    const OPS: &[(&str, Op)] = &[
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];
    let mut clauses = Vec::new();
    for part in split_and(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let found = OPS
            .iter()
            .filter_map(|(tok, op)| part.find(tok).map(|at| (at, *tok, *op)))
            .min_by_key(|(at, tok, _)| (*at, usize::MAX - tok.len()));
        let Some((at, tok, op)) = found else {
            return Err(ApiError::bad_request(format!(
                "filter clause `{part}` has no operator; write e.g. `email==eric@pactsafe.com`"
            )));
        };
        let path = part[..at].trim();
        let literal = unquote(part[at + tok.len()..].trim());
        if path.is_empty() {
            return Err(ApiError::bad_request(format!(
                "filter clause `{part}` has no field name"
            )));
        }
        clauses.push(Clause {
            path: path.to_owned(),
            op,
            literal: literal.to_owned(),
        });
    }
    Ok(clauses)
}

/// Splits on the word `and` (any case) surrounded by whitespace.
fn split_and(text: &str) -> Vec<&str> {
    let lower = text.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut search = 0;
    while let Some(rel) = lower[search..].find(" and ") {
        let at = search + rel;
        parts.push(&text[start..at]);
        start = at + 5;
        search = start;
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// "Sort the results of your call by a field in the Request." [UNVERIFIED] syntax: comma-separated
/// field names, `-field` for descending (the common REST convention); ties break by id.
fn parse_sort(text: &str) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (path, descending) = match raw.strip_prefix('-') {
            Some(p) => (p, true),
            None => (raw.strip_prefix('+').unwrap_or(raw), false),
        };
        if path.is_empty() {
            return Err(ApiError::bad_request(format!("sort key `{raw}` is empty")));
        }
        keys.push(SortKey {
            path: path.to_owned(),
            descending,
        });
    }
    Ok(keys)
}

impl Clause {
    /// Whether any value at the clause's path satisfies it. A missing field matches nothing
    /// ([UNVERIFIED], document-store semantics), except `!=`, which it satisfies.
    pub(crate) fn matches(&self, values: &[Value]) -> bool {
        if values.is_empty() {
            return self.op == Op::Ne;
        }
        if self.op == Op::Ne {
            return values
                .iter()
                .all(|v| compare(v, &self.literal) != Some(Ordering::Equal));
        }
        values.iter().any(|v| {
            compare(v, &self.literal).is_some_and(|ord| match self.op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ge => ord != Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                Op::Lt => ord == Ordering::Less,
                Op::Ne => false,
            })
        })
    }
}

/// Compares a stored value with a filter literal, typed by the stored value. Strings compare
/// exactly (ISO timestamps therefore compare chronologically).
fn compare(value: &Value, literal: &str) -> Option<Ordering> {
    match value {
        Value::String(s) => Some(s.as_str().cmp(literal)),
        Value::Number(n) => {
            let lit: f64 = literal.parse().ok()?;
            n.as_f64()?.partial_cmp(&lit)
        }
        Value::Bool(b) => {
            let lit: bool = literal.parse().ok()?;
            Some(b.cmp(&lit))
        }
        Value::Null => (literal == "null").then_some(Ordering::Equal),
        _ => None,
    }
}

/// Orders two sort values: missing first, then numbers, strings, booleans.
pub(crate) fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Number(_)) => 1,
            Some(Value::String(_)) => 2,
            Some(Value::Bool(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Copies `path` from `src` into `dst`, keeping nesting and mapping over arrays.
fn copy_path(src: &Value, path: &str, dst: &mut Value) {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let Some(found) = src.get(head) else {
        return;
    };
    let Value::Object(out) = dst else {
        return;
    };
    if rest.is_empty() {
        out.insert(head.to_owned(), found.clone());
        return;
    }
    match found {
        Value::Object(_) => {
            let slot = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            copy_path(found, rest, slot);
        }
        Value::Array(items) => {
            let slot = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Array(vec![Value::Object(Map::new()); items.len()]));
            if let Value::Array(slots) = slot {
                for (item, s) in items.iter().zip(slots.iter_mut()) {
                    copy_path(item, rest, s);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    const EXTRAS: Params = Params { extras: true };

    #[test]
    fn defaults_are_page_one_of_25() {
        let q = ListQuery::parse(None, EXTRAS).unwrap();
        assert_eq!((q.page, q.per_page, q.no_count), (1, 25, false));
    }

    #[test]
    fn per_page_above_100_is_clamped() {
        let q = ListQuery::parse(Some("per_page=500&page=3"), EXTRAS).unwrap();
        assert_eq!((q.page, q.per_page), (3, 100));
    }

    #[test]
    fn zero_or_garbage_paging_is_400() {
        for raw in [
            "page=0",
            "per_page=0",
            "page=abc",
            "per_page=-1",
            "no_count=maybe",
        ] {
            let err = ListQuery::parse(Some(raw), EXTRAS).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{raw}");
        }
    }

    #[test]
    fn filter_parses_the_documented_and_syntax() {
        let clauses =
            parse_filter("event_type==agreed and created_time>=2020-10-14 AND n!='x y'").unwrap();
        assert_eq!(
            clauses,
            vec![
                Clause {
                    path: "event_type".into(),
                    op: Op::Eq,
                    literal: "agreed".into()
                },
                Clause {
                    path: "created_time".into(),
                    op: Op::Ge,
                    literal: "2020-10-14".into()
                },
                Clause {
                    path: "n".into(),
                    op: Op::Ne,
                    literal: "x y".into()
                },
            ]
        );
        assert!(parse_filter("just-a-word").is_err());
    }

    #[test]
    fn clauses_compare_by_stored_type() {
        let c = |s: &str| parse_filter(s).unwrap().remove(0);
        assert!(c("id>=10").matches(&[json!(10)]));
        assert!(!c("id>10").matches(&[json!(10)]));
        assert!(c("verified==false").matches(&[json!(false)]));
        assert!(c("email==a@b.c").matches(&[json!("a@b.c")]));
        assert!(!c("email==A@b.c").matches(&[json!("a@b.c")]));
        assert!(!c("missing==x").matches(&[]));
    }

    #[test]
    fn no_count_omits_total_but_keeps_has_more() {
        let q = ListQuery::parse(Some("no_count=true&per_page=2"), EXTRAS).unwrap();
        let env = q.envelope(5, vec![json!({"id": 1}), json!({"id": 2})]);
        assert!(env.get("total_count").is_none());
        assert_eq!(env["has_more"], json!(true));
        assert_eq!(env["count"], json!(2));
    }

    #[test]
    fn fields_projection_keeps_id_and_nesting() {
        let q = ListQuery::parse(Some("fields=email,profiles.provider"), EXTRAS).unwrap();
        let item = json!({"id": 3, "email": "e", "name": "n",
                          "profiles": [{"provider": "local", "id": "e"}]});
        assert_eq!(
            q.project(item),
            json!({"id": 3, "email": "e", "profiles": [{"provider": "local"}]})
        );
    }

    #[test]
    fn sort_and_fields_are_ignored_where_undocumented() {
        let q = ListQuery::parse(Some("sort=-id&fields=id"), Params { extras: false }).unwrap();
        assert!(q.sort.is_empty() && q.fields.is_none());
    }
}
