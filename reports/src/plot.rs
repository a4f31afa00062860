//! The figures: convergence curves (the paper's Fig. 1-2) and stage-time bars (Fig. 3), each
//! drawn once per backend so the PNG and the SVG show the same thing.

use kinds::OptimizerKind;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::{RunResult, STAGES};
use crate::font;
use crate::profile::{steps, ProfileRow, TAU_MAX};
use crate::series::{Group, Series};
use crate::stages::StageRow;
use crate::ReportError;

/// A figure rendered both ways.
pub struct Rendered {
    pub png: Vec<u8>,
    pub svg: String,
}

/// What the convergence figure puts on its x axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Epochs,
    /// Training minutes, evaluation excluded.
    Minutes,
}

/// One line of a panel: the mean over seeds at each epoch, with the min-max band.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub color: RGBColor,
    /// (x, mean y, min y, max y) per epoch.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Colours keyed by optimizer so one optimizer looks the same in every report (Tableau 10):
/// one per kind in the paper's order, then one per skfac-ss sampling count 1, 2, 4, 8.
fn color_for(series: &Series, fallback: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    let kind = OptimizerKind::ALL
        .iter()
        .position(|k| *k == series.optimizer)
        .unwrap_or(0);
    let i = match series.samples.filter(|_| series.optimizer.samples_matter()) {
        None => kind,
        Some(s @ (1 | 2 | 4 | 8)) => kind + s.trailing_zeros() as usize,
        Some(_) => 9 + fallback,
    };
    PALETTE[i % PALETTE.len()]
}

/// Pools the series' seeds epoch by epoch; non-finite values (a diverged run) are left out.
pub fn curves(group: &Group, x: XAxis, y: fn(&crate::EpochPoint) -> f64) -> Vec<Curve> {
    group
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let last = s
                .runs
                .iter()
                .filter_map(|r| r.epochs.last().map(|e| e.epoch))
                .max()
                .unwrap_or(0);
            let points = (1..=last)
                .filter_map(|epoch| {
                    let at: Vec<(f64, f64)> = s
                        .runs
                        .iter()
                        .filter_map(|r: &&RunResult| r.epochs.iter().find(|e| e.epoch == epoch))
                        .map(|e| {
                            let xv = match x {
                                XAxis::Epochs => e.epoch as f64,
                                XAxis::Minutes => e.wall_seconds / 60.0,
                            };
                            (xv, y(e))
                        })
                        .filter(|(xv, yv)| xv.is_finite() && yv.is_finite())
                        .collect();
                    (!at.is_empty()).then(|| {
                        let n = at.len() as f64;
                        let xm = at.iter().map(|p| p.0).sum::<f64>() / n;
                        let ym = at.iter().map(|p| p.1).sum::<f64>() / n;
                        let lo = at.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                        let hi = at.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                        (xm, ym, lo, hi)
                    })
                })
                .collect();
            Curve {
                label: s.label(),
                color: color_for(s, i),
                points,
            }
        })
        .filter(|c| !c.points.is_empty())
        .collect()
}

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Plot {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// The value range of a panel with a little headroom; a flat or empty range is widened.
fn span(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let pad = 0.05 * (hi - lo).max(1e-9);
    if hi - lo < 1e-9 {
        hi += 0.5;
        lo -= 0.5;
    }
    (if from_zero { lo } else { lo - pad }, hi + pad)
}

/// One panel of the convergence figure.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x: XAxis,
    y_desc: &str,
    curves: &[Curve],
    legend: bool,
) -> Result<(), String> {
    let (mut x0, mut x1) = span(
        curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)),
        true,
    );
    if x == XAxis::Epochs {
        // Whole epochs: ticks at integers only.
        (x0, x1) = (0.0, x1.floor().max(1.0) + 0.25);
    }
    let (y0, y1) = span(
        curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.2, p.3])),
        false,
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (font::FAMILY, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0.max(0.0)..y1)
        .map_err(|e| e.to_string())?;
    let epochs = x1.floor() as usize;
    let integral = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{}", v.round() as i64)
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(y_desc)
        .label_style((font::FAMILY, 14))
        .axis_desc_style((font::FAMILY, 16))
        .light_line_style(RGBColor(235, 235, 235));
    match x {
        XAxis::Epochs => mesh
            .x_desc("epoch")
            .x_labels((epochs + 1).min(11))
            .x_label_formatter(&integral),
        XAxis::Minutes => mesh.x_desc("training time (min, evaluation excluded)"),
    };
    mesh.draw().map_err(|e| e.to_string())?;
    for c in curves {
        if c.points.iter().any(|p| p.3 > p.2) {
            let band: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (p.0, p.3))
                .chain(c.points.iter().rev().map(|p| (p.0, p.2)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.color.mix(0.18))))
                .map_err(|e| e.to_string())?;
        }
    }
    // Marker shapes differ by curve so that curves lying on top of each other (K-FAC and SUA
    // on a network without convolutions, say) still show; the legend carries the same marker.
    for (i, c) in curves.iter().enumerate() {
        let color = c.color;
        let style = color.filled();
        let anno = chart
            .draw_series(LineSeries::new(
                c.points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        anno.label(c.label.clone());
        let line = move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (24, 0)], color.stroke_width(2))
        };
        match i % 4 {
            0 => {
                anno.legend(move |p| line(p) + Circle::new((12, 0), 4, style));
                chart.draw_series(c.points.iter().map(|p| Circle::new((p.0, p.1), 4, style)))
            }
            1 => {
                anno.legend(move |p| line(p) + TriangleMarker::new((12, 0), 6, style));
                chart.draw_series(
                    c.points
                        .iter()
                        .map(|p| TriangleMarker::new((p.0, p.1), 6, style)),
                )
            }
            2 => {
                anno.legend(move |p| line(p) + Rectangle::new([(8, -4), (16, 4)], style));
                chart.draw_series(c.points.iter().map(|p| {
                    EmptyElement::at((p.0, p.1)) + Rectangle::new([(-4, -4), (4, 4)], style)
                }))
            }
            _ => {
                let thick = color.stroke_width(2);
                anno.legend(move |p| line(p) + Cross::new((12, 0), 5, thick));
                chart.draw_series(c.points.iter().map(|p| Cross::new((p.0, p.1), 5, thick)))
            }
        }
        .map_err(|e| e.to_string())?;
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((font::FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A figure that can be drawn on any backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `fig` on a PNG and on an SVG of `size` pixels.
fn render(what: &str, size: (u32, u32), fig: &impl Figure) -> Result<Rendered, ReportError> {
    font::register();
    let mut svg = String::new();
    fig.draw(SVGBackend::with_string(&mut svg, size).into_drawing_area())
        .map_err(err(what))?;
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    fig.draw(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())
        .map_err(err(what))?;
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(err(what))?;
        w.write_image_data(&rgb).map_err(err(what))?;
    }
    Ok(Rendered {
        png: png_bytes,
        svg,
    })
}

struct ConvergenceFigure<'a> {
    title: &'a str,
    x: XAxis,
    error: Vec<Curve>,
    loss: Vec<Curve>,
}

impl Figure for ConvergenceFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(self.title, (font::FAMILY, 22))
            .map_err(|e| e.to_string())?;
        let (w, _) = root.dim_in_pixel();
        let (left, right) = root.split_horizontally(w / 2);
        panel(
            &left,
            "Test error",
            self.x,
            "test error (%)",
            &self.error,
            false,
        )?;
        panel(
            &right,
            "Training loss",
            self.x,
            "training loss",
            &self.loss,
            true,
        )?;
        root.present().map_err(|e| e.to_string())
    }
}

/// Test error (%) and training loss side by side against `x`, one line per series.
pub fn convergence(group: &Group, x: XAxis, title: &str) -> Result<Rendered, ReportError> {
    let fig = ConvergenceFigure {
        title,
        x,
        error: curves(group, x, |e| 100.0 * (1.0 - e.test_accuracy)),
        loss: curves(group, x, |e| e.train_loss),
    };
    render("convergence figure", (1400, 560), &fig)
}

/// Colours of the stages, in [`STAGES`] order.
const STAGE_COLORS: [RGBColor; 7] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
];

struct StageFigure<'a> {
    title: &'a str,
    rows: &'a [StageRow],
}

impl Figure for StageFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = self.rows.len();
        // Room on the right for the legend, so it never covers a bar.
        let xmax = 1e3 * self.rows.iter().map(StageRow::total).fold(0.0, f64::max) * 1.35;
        let labels: Vec<String> = self.rows.iter().map(|r| r.label.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, (font::FAMILY, 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(150)
            .build_cartesian_2d(
                0.0..xmax.max(1e-6),
                (0..n.saturating_sub(1)).into_segmented(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("mean time per training step (ms)")
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                // The first series on top, as a table reads.
                SegmentValue::CenterOf(i) if *i < n => labels[n - 1 - i].clone(),
                _ => String::new(),
            })
            .label_style((font::FAMILY, 14))
            .axis_desc_style((font::FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, stage) in STAGES.iter().enumerate() {
            let color = STAGE_COLORS[k];
            let bars = self.rows.iter().enumerate().filter_map(|(row, r)| {
                let i = n - 1 - row;
                let x0 = 1e3 * r.seconds[..k].iter().sum::<f64>();
                let x1 = x0 + 1e3 * r.seconds[k];
                (x1 > x0).then(|| {
                    let mut rect = Rectangle::new(
                        [
                            (x0, SegmentValue::Exact(i)),
                            (x1, SegmentValue::Exact(i + 1)),
                        ],
                        color.filled(),
                    );
                    rect.set_margin(6, 6, 0, 0);
                    rect
                })
            });
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(*stage)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((font::FAMILY, 14))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

/// Stacked horizontal bars of the mean per-step seconds per stage, one bar per series.
pub fn stage_bars(rows: &[StageRow], title: &str) -> Result<Rendered, ReportError> {
    let height = 140 + 46 * rows.len().max(1) as u32;
    render(
        "stage-time figure",
        (1200, height.max(380)),
        &StageFigure { title, rows },
    )
}

struct ProfileFigure<'a> {
    title: &'a str,
    rows: &'a [ProfileRow],
}

impl Figure for ProfileFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, (font::FAMILY, 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..TAU_MAX, -0.02..1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("τ (time to target over the fastest optimizer's)")
            .y_desc("ρ(τ): share of workloads")
            .label_style((font::FAMILY, 14))
            .axis_desc_style((font::FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, r) in self.rows.iter().enumerate() {
            let color = color_for(
                &Series {
                    optimizer: r.config.optimizer,
                    samples: r.config.samples,
                    runs: Vec::new(),
                },
                i,
            );
            // Equal curves would hide each other: each is lifted by a hair.
            let lift = 0.004 * i as f64;
            chart
                .draw_series(LineSeries::new(
                    steps(&r.ratios).into_iter().map(|(t, p)| (t, p + lift)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("{} (area {:.3})", r.config.label(), r.area))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((font::FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

/// The performance profile: ρ(τ) as a step line per optimizer configuration.
pub fn profile(rows: &[ProfileRow], title: &str) -> Result<Rendered, ReportError> {
    render(
        "performance profile",
        (1000, 600),
        &ProfileFigure { title, rows },
    )
}
