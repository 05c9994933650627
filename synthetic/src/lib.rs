//! Synthetic bedside vitals.
