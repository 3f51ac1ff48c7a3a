//! Simulator of Ironclad's SCIM 2.0 API and OAuth token endpoint, from Ironclad's public developer docs.
