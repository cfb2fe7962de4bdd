//! test

/// x
#[derive(serde::Deserialize, garde::Validate)]
pub struct Say {
    /// t
    #[garde(length(chars, min = 1, max = 500))]
    pub text: String,
}
