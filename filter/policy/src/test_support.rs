//! Lets every unit test run both natively and under wasm-bindgen-test.
//!
//! Why: the pure crate's contract is that it behaves identically inside the .wasm. Tests import
//! `crate::test_support::test` and annotate with `#[test]`; on wasm32 that attribute is
//! wasm-bindgen-test's, natively it is the built-in one.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use core::prelude::v1::test;
