//! lab tests
