//! Simulator of the Ironclad Clickwrap (PactSafe) REST API v1.1, from its public developer docs.
