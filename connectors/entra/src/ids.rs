//! Ids on their way into a request: validated, then placed as one percent-encoded path segment,
//! an `@odata.id` reference, or an escaped OData literal (DESIGN §7.3, "Ids").
//!
//! Directory object ids (users, groups, service principals, directory roles, role definitions,
//! app roles, administrative units) are GUIDs (directoryobject.md: `id` "The unique identifier
//! for the object ... 00000000-0000-0000-0000-000000000000"), so anything else — empty, `.`,
//! `..`, a `/`, a `\`, whitespace, a control character — is refused before a request exists.
//! Assignment ids (appRoleAssignment, unifiedRoleAssignment) are opaque base64url-like strings
//! (`-WmtM5na7Uus0D8kI1yylpU9Mdo0Pb9OoBJvd3T5eKc`, `lAPpYvVpN0KRkAEhdxReEJC2sEqbR_9Hr48lds9SGHI-1`
//! in the API pages' examples): they are held to that alphabet.

use idhost_connector_sdk::ConnectorError;

/// `id` if it is a GUID in Graph's 8-4-4-4-12 form; `what` names it in the error.
pub(crate) fn guid<'a>(what: &str, id: &'a str) -> Result<&'a str, ConnectorError> {
    let hyphenated = id.len() == 36
        && id
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    if hyphenated && uuid::Uuid::try_parse(id).is_ok() {
        Ok(id)
    } else {
        Err(ConnectorError::invalid_input(format!(
            "{what} `{}` is not a Microsoft Entra object id (a GUID such as \
             `6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0`); nothing was sent",
            id.escape_debug()
        )))
    }
}

/// `id` if it is an opaque assignment id: 1–256 characters of `A-Z a-z 0-9 - _`.
pub(crate) fn assignment<'a>(what: &str, id: &'a str) -> Result<&'a str, ConnectorError> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(ConnectorError::internal(format!(
            "Graph answered {what} `{}`, which is not an assignment id (letters, digits, `-`, \
             `_`); refusing to put it in a URL",
            id.escape_debug()
        )))
    }
}

/// `value` percent-encoded as one path segment (RFC 3986 `segment`: everything but unreserved
/// characters and the sub-delimiters, `:` and `@` is encoded, so `/`, `?`, `#`, `%` and spaces
/// cannot leave the segment).
pub(crate) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An OData string literal: in single quotes, a quote inside doubled (OData ABNF,
/// `SQUOTE-in-string = SQUOTE SQUOTE`).
pub(crate) fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_graph_guids_pass() {
        assert!(guid("group id", "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "6ea91a8d e32e 41a1 b7bd d2d185eed0e0",
            "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0\n",
            "6ea91a8de32e41a1b7bdd2d185eed0e0",
            "{6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0}",
            "6ea91a8d-e32e-41a1-b7bd-d2d185eed0eg",
            "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0' or 1 eq 1 or id eq '",
        ] {
            let err = guid("group id", bad).expect_err(bad);
            assert!(err.message.contains("group id"), "{err}");
        }
        assert!(assignment("id", "lAPpYvVpN0KRkAEhdxReEJC2sEqbR_9Hr48lds9SGHI-1").is_ok());
        for bad in ["", "..", "a/b", "a%2Fb", "a b", "a?b"] {
            assert!(assignment("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_and_literals_are_escaped() {
        assert_eq!(segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(segment("$ref"), "$ref");
        assert_eq!(odata_string("o'brien"), "'o''brien'");
        assert_eq!(
            odata_string("x' or principalId ne 'y"),
            "'x'' or principalId ne ''y'"
        );
    }
}
