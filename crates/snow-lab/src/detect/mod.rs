//! Outbreak detection over weekly series (DESIGN.md §4, SURVEILLANCE.md):
//! the algorithms of the R package `surveillance`, reproduced exactly.
//! Today: EARS C1–C3. Farrington-flexible follows.

pub mod ears;
pub mod normal;
pub mod series;
