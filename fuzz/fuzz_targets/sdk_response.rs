//! The SDK's handling of an upstream answer, which every connector parser receives: JSON
//! decoding (`HttpResponse::json`), status mapping, error construction with a body excerpt, and
//! `Retry-After` parsing. Never panics, whatever the bytes.
//!
//! The connectors' own page parsers (SCIM ListResponse/PatchOp/error, Graph page/batch/delta,
//! Clickwrap envelope) are private to their crates; their input arrives through here.
#![no_main]

use idhost_connector_sdk::HttpResponse;
use idhost_connector_sdk::http::parse_retry_after;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let split = usize::from(data[2]).min(data.len() - 3);
    let (header, body) = data[3..].split_at(split);
    let retry = String::from_utf8_lossy(header).into_owned();
    let response = HttpResponse {
        status,
        headers: vec![
            ("retry-after".to_owned(), retry.clone()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body: body.to_vec(),
        dry_run: false,
        request_line: "GET https://upstream.invalid/v1/users".to_owned(),
    };
    let _ = parse_retry_after(&retry);
    let _ = response.retry_after();
    let _ = response.json::<serde_json::Value>();
    let _ = response.body_excerpt(200);
    let _ = response.error_kind();
    if let Some(kind) = response.error_kind() {
        let _ = response.to_error(kind, "fuzz");
    }
    let _ = response.clone().error_for_status();
});
