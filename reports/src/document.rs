//! A report as a list of blocks, rendered once as Markdown (images linked beside it) and once
//! as self-contained HTML (images inline as SVG), so the two never drift apart.

/// One piece of a report.
#[derive(Clone, Debug)]
pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A figure: the PNG the Markdown links to, and the SVG text the HTML inlines.
    Figure {
        caption: String,
        png: String,
        svg: String,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Drops the XML declaration so the SVG can sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

impl Document {
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for b in &self.blocks {
            out.push('\n');
            match b {
                Block::Heading(level, text) => {
                    out.push_str(&format!("{} {text}\n", "#".repeat(*level as usize + 1)))
                }
                Block::Paragraph(text) => out.push_str(&format!("{text}\n")),
                Block::List(items) => {
                    for i in items {
                        out.push_str(&format!("- {i}\n"));
                    }
                }
                Block::Table { header, rows } => {
                    let line = |cells: &[String]| {
                        let cells: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
                        format!("| {} |\n", cells.join(" | "))
                    };
                    out.push_str(&line(header));
                    let rule: Vec<String> = (0..header.len())
                        .map(|i| if i == 0 { "---".into() } else { "---:".into() })
                        .collect();
                    out.push_str(&format!("|{}|\n", rule.join("|")));
                    for r in rows {
                        out.push_str(&line(r));
                    }
                }
                Block::Figure { caption, png, .. } => {
                    out.push_str(&format!("![{caption}]({png})\n\n*{caption}*\n"))
                }
            }
        }
        out
    }

    pub fn to_html(&self) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
             <style>\nbody {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}\n\
             table {{ border-collapse: collapse; margin: 1em 0; }}\n\
             th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; }}\n\
             td:not(:first-child), th:not(:first-child) {{ text-align: right; }}\n\
             th {{ background: #f3f3f3; }}\nfigure {{ margin: 1.5em 0; }}\nfigure svg {{ max-width: 100%; height: auto; }}\n\
             figcaption {{ font-style: italic; color: #555; }}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            html_escape(&self.title),
            html_escape(&self.title)
        );
        for b in &self.blocks {
            match b {
                Block::Heading(level, text) => {
                    let h = (*level + 1).min(6);
                    out.push_str(&format!("<h{h}>{}</h{h}>\n", html_escape(text)))
                }
                Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", html_escape(text))),
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for i in items {
                        out.push_str(&format!("<li>{}</li>\n", html_escape(i)));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table { header, rows } => {
                    out.push_str("<table>\n<tr>");
                    for h in header {
                        out.push_str(&format!("<th>{}</th>", html_escape(h)));
                    }
                    out.push_str("</tr>\n");
                    for r in rows {
                        out.push_str("<tr>");
                        for c in r {
                            out.push_str(&format!("<td>{}</td>", html_escape(c)));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</table>\n");
                }
                Block::Figure { caption, svg, .. } => out.push_str(&format!(
                    "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                    inline_svg(svg),
                    html_escape(caption)
                )),
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_carry_the_same_table_and_escape_it() {
        let d = Document {
            title: "T <1>".into(),
            blocks: vec![Block::Table {
                header: vec!["a".into(), "b".into()],
                rows: vec![vec!["x|y".into(), "<z>".into()]],
            }],
        };
        let md = d.to_markdown();
        assert!(
            md.contains("| a | b |\n|---|---:|\n| x\\|y | <z> |\n"),
            "{md}"
        );
        let html = d.to_html();
        assert!(html.contains("<td>x|y</td><td>&lt;z&gt;</td>"), "{html}");
        assert!(html.contains("<title>T &lt;1&gt;</title>"));
    }
}
