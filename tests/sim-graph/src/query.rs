//! OData query options: parsing, the validation Graph applies, and a small `$filter` evaluator.
//!
//! The filter language is the subset directory clients use: `prop eq|ne literal`,
//! `startswith(prop,'x')`, `endswith(prop,'x')`, `not(…)`, `prop/any(c:c eq 'x')`, joined by one
//! kind of connective (`and` or `or`). `ne`, `not` and `endswith` are advanced queries and need
//! `ConsistencyLevel: eventual` plus `$count=true` (concepts/aad-advanced-queries.md).

use serde_json::Value;
use url::form_urlencoded;

use crate::render::{Select, Shape, canonical};
use crate::reply::{Reply, bad_request, not_implemented, unsupported_query};

/// Request headers with lower-case names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl Headers {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn eventual(&self) -> bool {
        self.get("consistencylevel")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
    }
}

/// The query string, decoded, plus its raw pairs (a nextLink repeats them, paging.md: "The URL
/// also contains all the other query parameters present in the original request").
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
    raw: Vec<String>,
}

impl Query {
    pub(crate) fn parse(raw: &str) -> Self {
        let pairs = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let raw = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        Self { pairs, raw }
    }

    /// A query option by name; `$` options match case-insensitively (`$skipToken`, `$deltaToken`).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The query of the next page: everything but `$skiptoken`, then the new token.
    pub(crate) fn with_skiptoken(&self, token: &str) -> String {
        let mut parts: Vec<String> = self
            .raw
            .iter()
            .filter(|p| {
                let key = p.split('=').next().unwrap_or_default();
                let key = key.replace("%24", "$");
                !key.eq_ignore_ascii_case("$skiptoken")
            })
            .cloned()
            .collect();
        parts.push(format!("$skiptoken={token}"));
        parts.join("&")
    }
}

/// A literal in a filter clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Null,
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    StartsWith,
    EndsWith,
    AnyEq,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clause {
    pub(crate) negate: bool,
    pub(crate) prop: String,
    pub(crate) op: Op,
    pub(crate) value: Lit,
}

/// A parsed `$filter`: clauses joined by `and` (`all`) or `or` (not `all`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    pub(crate) all: bool,
    pub(crate) clauses: Vec<Clause>,
}

/// Splits on a top-level keyword (outside quotes and parentheses), case-insensitively.
fn split_top(text: &str, word: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let needle = format!(" {} ", word.to_ascii_lowercase());
    let bytes = text.as_bytes();
    let (mut depth, mut quoted, mut start, mut i) = (0i32, false, 0usize, 0usize);
    let mut parts = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ => {}
        }
        if !quoted && depth == 0 && lower.as_bytes()[i..].starts_with(needle.as_bytes()) {
            parts.push(text[start..i].trim().to_owned());
            i += needle.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(text[start..].trim().to_owned());
    parts
}

fn parse_lit(text: &str) -> Option<Lit> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(Lit::Str(inner.replace("''", "'")));
    }
    match t.to_ascii_lowercase().as_str() {
        "true" => Some(Lit::Bool(true)),
        "false" => Some(Lit::Bool(false)),
        "null" => Some(Lit::Null),
        _ => t
            .parse::<f64>()
            .ok()
            .map(Lit::Num)
            // Unquoted GUIDs are accepted for id comparisons.
            .or_else(|| (t.len() == 36).then(|| Lit::Str(t.to_owned()))),
    }
}

fn strip_call<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    if lower.starts_with(&format!("{name}(")) && text.ends_with(')') {
        Some(&text[name.len() + 1..text.len() - 1])
    } else {
        None
    }
}

fn parse_clause(text: &str) -> Option<Clause> {
    let text = text.trim();
    if let Some(inner) = strip_call(text, "not") {
        let mut clause = parse_clause(inner)?;
        clause.negate = !clause.negate;
        return Some(clause);
    }
    for (name, op) in [("startswith", Op::StartsWith), ("endswith", Op::EndsWith)] {
        if let Some(args) = strip_call(text, name) {
            let (prop, lit) = args.split_once(',')?;
            return Some(Clause {
                negate: false,
                prop: prop.trim().to_owned(),
                op,
                value: parse_lit(lit)?,
            });
        }
    }
    if let Some((prop, rest)) = text.split_once("/any(") {
        // prop/any(c:c eq 'x')
        let body = rest.strip_suffix(')')?;
        let (var, cond) = body.split_once(':')?;
        let cond = cond.trim().strip_prefix(var.trim())?.trim_start();
        let lit = cond
            .strip_prefix("eq ")
            .or_else(|| cond.strip_prefix("EQ "))?;
        return Some(Clause {
            negate: false,
            prop: prop.trim().to_owned(),
            op: Op::AnyEq,
            value: parse_lit(lit)?,
        });
    }
    let mut words = text.splitn(3, char::is_whitespace);
    let (prop, op, lit) = (words.next()?, words.next()?, words.next()?);
    let op = match op.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        _ => return None,
    };
    Some(Clause {
        negate: false,
        prop: prop.to_owned(),
        op,
        value: parse_lit(lit)?,
    })
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let ands = split_top(text, "and");
        let ors = split_top(text, "or");
        let (all, parts) = match (ands.len() > 1, ors.len() > 1) {
            (true, true) => return None,
            (false, true) => (false, ors),
            _ => (true, ands),
        };
        let clauses = parts
            .iter()
            .map(|p| parse_clause(p))
            .collect::<Option<Vec<_>>>()?;
        Some(Self { all, clauses })
    }

    /// The first operator that only works in advanced queries, as Graph names it.
    pub(crate) fn advanced_operator(&self) -> Option<&'static str> {
        self.clauses.iter().find_map(|c| {
            if c.negate {
                Some("not")
            } else if c.op == Op::Ne {
                Some("ne")
            } else if c.op == Op::EndsWith {
                Some("endsWith")
            } else {
                None
            }
        })
    }

    pub(crate) fn matches(&self, prop: impl Fn(&str) -> Option<Value>) -> bool {
        let test = |c: &Clause| {
            let value = prop(&c.prop).unwrap_or(Value::Null);
            clause_holds(c, &value) != c.negate
        };
        if self.all {
            self.clauses.iter().all(test)
        } else {
            self.clauses.iter().any(test)
        }
    }

    /// Clauses `id eq '…'` only (the one filter delta supports), as id strings.
    pub(crate) fn id_list(&self) -> Option<Vec<String>> {
        self.clauses
            .iter()
            .map(|c| match (&c.value, c.op, c.negate) {
                (Lit::Str(id), Op::Eq, false) if c.prop.eq_ignore_ascii_case("id") => {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect()
    }
}

fn eq(lit: &Lit, value: &Value) -> bool {
    match (lit, value) {
        (Lit::Str(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Lit::Bool(a), Value::Bool(b)) => a == b,
        (Lit::Null, Value::Null) => true,
        (Lit::Num(a), Value::Number(b)) => b.as_f64().is_some_and(|b| (a - b).abs() < f64::EPSILON),
        _ => false,
    }
}

fn clause_holds(c: &Clause, value: &Value) -> bool {
    let text = |v: &Value| v.as_str().map(str::to_ascii_lowercase);
    let lit = match &c.value {
        Lit::Str(s) => Some(s.to_ascii_lowercase()),
        _ => None,
    };
    match c.op {
        Op::Eq => eq(&c.value, value),
        Op::Ne => !eq(&c.value, value),
        Op::StartsWith => matches!((text(value), lit), (Some(v), Some(l)) if v.starts_with(&l)),
        Op::EndsWith => matches!((text(value), lit), (Some(v), Some(l)) if v.ends_with(&l)),
        Op::AnyEq => value
            .as_array()
            .is_some_and(|items| items.iter().any(|i| eq(&c.value, i))),
    }
}

/// `$search="displayName:foo" OR "mail:bar"`: each clause is `property:term` or a bare term.
#[derive(Debug, Clone)]
pub(crate) struct Search(Vec<(Option<String>, String)>);

impl Search {
    pub(crate) fn parse(text: &str) -> Self {
        Self(
            split_top(text, "or")
                .into_iter()
                .map(|p| {
                    let p = p.trim().trim_matches('"').to_owned();
                    match p.split_once(':') {
                        Some((prop, term)) => (Some(prop.to_owned()), term.to_ascii_lowercase()),
                        None => (None, p.to_ascii_lowercase()),
                    }
                })
                .collect(),
        )
    }

    /// Graph tokenizes; a case-insensitive substring match is close enough for tests.
    pub(crate) fn matches(&self, prop: impl Fn(&str) -> Option<Value>) -> bool {
        self.0.iter().any(|(name, term)| {
            let names: Vec<&str> = match name {
                Some(n) => vec![n.as_str()],
                None => vec!["displayName", "mail", "userPrincipalName"],
            };
            names.iter().any(|n| {
                prop(n)
                    .and_then(|v| v.as_str().map(str::to_ascii_lowercase))
                    .is_some_and(|v| v.contains(term.as_str()))
            })
        })
    }
}

/// The options of a collection GET, validated the way Graph validates them.
#[derive(Debug, Clone)]
pub(crate) struct ListOptions {
    pub(crate) select: Select,
    pub(crate) top: usize,
    pub(crate) skiptoken: Option<String>,
    pub(crate) filter: Option<Filter>,
    pub(crate) search: Option<Search>,
    pub(crate) count: bool,
    pub(crate) expand: Option<String>,
}

/// Graph's default page for directory collections (concepts/paging.md; 100 for users and
/// groups) and its `$top` ceiling.
pub(crate) const DEFAULT_PAGE: usize = 100;
pub(crate) const MAX_PAGE: usize = 999;

pub(crate) fn parse_top(raw: &str) -> Result<usize, Reply> {
    match raw.trim().parse::<i64>() {
        // Wording as Graph answers it (quoted by clients, e.g. turbot/steampipe-plugin-azuread:
        // "Request_UnsupportedQuery: Invalid page size specified: '1000'. Must be between 1 and
        // 999 inclusive.").
        Ok(n) if (1..=MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Ok(n) => Err(unsupported_query(format!(
            "Invalid page size specified: '{n}'. Must be between 1 and {MAX_PAGE} inclusive."
        ))),
        Err(_) => Err(bad_request(format!(
            "Invalid value '{raw}' for query option '$top'."
        ))),
    }
}

pub(crate) fn list_options(
    query: &Query,
    headers: &Headers,
    shape: &Shape,
    type_name: &str,
) -> Result<ListOptions, Reply> {
    if query.get("$orderby").is_some() {
        return Err(not_implemented("$orderby"));
    }
    if query.get("$skip").is_some() {
        // user-list.md: "`$skip` isn't supported."
        return Err(bad_request("'$skip' is not supported by the service."));
    }
    let eventual = headers.eventual();
    let count_param = query
        .get("$count")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let top = match query.get("$top") {
        Some(raw) => parse_top(raw)?,
        None => DEFAULT_PAGE,
    };
    let search = match query.get("$search") {
        // aad-advanced-queries.md, "Error handling": $search needs the header.
        Some(_) if !eventual => {
            return Err(unsupported_query(
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        Some(text) => Some(Search::parse(text)),
        None => None,
    };
    let filter = match query.get("$filter") {
        Some(text) => {
            let filter = Filter::parse(text)
                .ok_or_else(|| unsupported_query(format!("Invalid filter clause: {text}")))?;
            for clause in &filter.clauses {
                if canonical(shape, &clause.prop).is_none() {
                    return Err(bad_request(format!(
                        "Could not find a property named '{}' on type 'microsoft.graph.{type_name}'.",
                        clause.prop
                    )));
                }
            }
            if let Some(op) = filter.advanced_operator() {
                // aad-advanced-queries.md: advanced operators need both the header and $count.
                if !(eventual && count_param) {
                    return Err(unsupported_query(format!(
                        "Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
                    )));
                }
            }
            Some(filter)
        }
        None => None,
    };
    Ok(ListOptions {
        select: Select::parse(query.get("$select")),
        top,
        skiptoken: query.get("$skiptoken").map(str::to_owned),
        filter,
        search,
        // aad-advanced-queries.md: without the header `?$count=true` is silently ignored.
        count: count_param && eventual,
        expand: query.get("$expand").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_the_shapes_directory_clients_send() {
        let f = Filter::parse("servicePrincipalType eq 'ManagedIdentity'").unwrap();
        assert_eq!(f.clauses[0].op, Op::Eq);
        assert_eq!(f.clauses[0].value, Lit::Str("ManagedIdentity".into()));
        let f = Filter::parse("id eq 'a' or id eq 'b''c'").unwrap();
        assert!(!f.all);
        assert_eq!(f.id_list().unwrap(), vec!["a".to_owned(), "b'c".to_owned()]);
        let f = Filter::parse("groupTypes/any(c:c eq 'Unified')").unwrap();
        assert_eq!(f.clauses[0].op, Op::AnyEq);
        let f = Filter::parse("not(accountEnabled eq true) and endswith(mail,'x and y')").unwrap();
        assert!(f.all && f.clauses[0].negate);
        assert_eq!(f.advanced_operator(), Some("not"));
        assert!(Filter::parse("a eq 1 and b eq 2 or c eq 3").is_none());
    }

    #[test]
    fn next_page_query_keeps_options_and_replaces_the_token() {
        let q = Query::parse("$top=5&$select=id&$skiptoken=old");
        assert_eq!(q.with_skiptoken("new"), "$top=5&$select=id&$skiptoken=new");
        assert_eq!(q.get("$SkipToken"), Some("old"));
    }
}
