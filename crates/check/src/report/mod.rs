//! Reports of verdicts: human text, JSON, and a self-contained HTML page
//! with a timeline. The simulator and the chaos runner reuse these.

mod escape;
mod html;
mod json;
mod story;
mod text;

pub use html::render_html;
pub use json::report_json;
pub use text::{render_text, render_text_with_lines};
