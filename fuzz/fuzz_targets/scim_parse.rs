//! Ironclad SCIM: ListResponse paging, user/group mapping, PatchOp building, SCIM errors: see
//! `idhost_ironclad::fuzzing::scim_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost_ironclad::fuzzing::scim_parse(data));
