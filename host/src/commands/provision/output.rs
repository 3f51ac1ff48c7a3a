//! What `idhost provision` prints: one JSON document, or a line of text with the error and, on
//! a dry run, the writes it would have sent.

use serde_json::{Value, json};

use crate::cli::{OutputFormat, ProvisionArgs};
use crate::redact::Redactor;
use crate::services::http::InterceptedRequest;

/// What one provisioning call came to.
pub(super) struct Report<'a> {
    pub(super) source: &'a str,
    pub(super) target: &'a str,
    pub(super) result_word: &'a str,
    pub(super) detail: &'a Value,
    pub(super) intercepted: &'a [InterceptedRequest],
}

/// Prints `report` in the format `args` asks for, every secret redacted.
pub(super) fn print(
    args: &ProvisionArgs,
    output: OutputFormat,
    report: &Report<'_>,
    redactor: &Redactor,
) {
    let Report {
        source,
        target,
        result_word,
        detail,
        intercepted,
    } = report;
    match output {
        OutputFormat::Json | OutputFormat::Csv => {
            let doc = json!({
                "source": source, "operation": args.op.name(), "target": target,
                "dry_run": args.dry_run, "result": result_word, "detail": detail,
            });
            println!(
                "{}",
                redactor.redact(&serde_json::to_string_pretty(&doc).unwrap_or_default())
            );
        }
        OutputFormat::Table => {
            println!("{} {} on {}: {result_word}", args.op.name(), target, source);
            if *result_word == "already"
                && matches!(args.op, crate::cli::ProvisionOp::Delete { .. })
            {
                println!(
                    "  {target} was already deleted in `{source}` (the upstream answered 404): nothing to do"
                );
            }
            if let Some(error) = detail.get("error").and_then(Value::as_str) {
                println!("  error: {error}");
            }
            if args.dry_run {
                if intercepted.is_empty() {
                    println!("  dry run: no write would be sent");
                }
                for request in intercepted.iter() {
                    println!("  would send: {} {}", request.method, request.url);
                    if !request.body.is_empty() {
                        println!("    {}", request.body);
                    }
                }
            }
        }
    }
}
