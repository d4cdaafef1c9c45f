//! Outbreak detection over weekly series (DESIGN.md §4, SURVEILLANCE.md):
//! the algorithms of the R package `surveillance`, reproduced exactly:
//! EARS C1–C3 and Farrington-flexible.

pub mod dist;
pub mod ears;
pub mod farrington;
pub mod glm;
pub mod normal;
pub mod series;
