//! SCIM filter expressions the connector builds (RFC 7644 §3.4.2.2). A comparison value is a
//! JSON value (`compValue = false / null / true / number / string`, the string per RFC 7159
//! §7), so a literal is written as a JSON string: quotes, backslashes and control characters
//! escaped, and nothing in it can end the string and add to the expression.

use serde_json::Value;

/// `<attribute> eq "<value>"`, the value escaped as a JSON string.
pub(crate) fn eq(attribute: &str, value: &str) -> String {
    format!("{attribute} eq {}", Value::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_json_strings_so_they_cannot_extend_the_expression() {
        assert_eq!(
            eq("userName", "alex.doe@example.com"),
            r#"userName eq "alex.doe@example.com""#
        );
        assert_eq!(
            eq("userName", r#"x" or userName pr or "a\"#),
            r#"userName eq "x\" or userName pr or \"a\\""#
        );
        assert_eq!(eq("displayName", "a\nb"), r#"displayName eq "a\nb""#);
    }
}
