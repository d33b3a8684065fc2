//! Output writing (placeholder being written).
