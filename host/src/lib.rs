//! idhost
