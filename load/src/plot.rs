//! boxoffice-plot: PNG charts from `target/bench/results.jsonl` (scripts/bench.sh).
//!
//! ```text
//! boxoffice-plot target/bench/results.jsonl docs/bench
//! ```
//!
//! Writes `throughput.png` (hold attempts/s against concurrency, per design),
//! `latency-cdf.png` (hold latency distribution, per design) and `failover.png`
//! (successful requests per 100 ms around a kill -9 and a SIGTERM of the leader).
//!
//! Given the soak's samples instead (`scripts/soak.sh`, a `.tsv` file), writes
//! `soak.png`: etcd's database size against its quota, and holds per second, over time.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font() -> Result<()> {
    let path = FONT_PATHS
        .iter()
        .find(|p| Path::new(p).exists())
        .context("no DejaVuSans.ttf found (install fonts-dejavu-core)")?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("bad font {path}"))?;
    Ok(())
}

fn color(target: &str) -> RGBColor {
    match target {
        "boxoffice" => RGBColor(31, 119, 180),
        "postgres" => RGBColor(214, 39, 40),
        _ => RGBColor(44, 160, 44),
    }
}

fn throughput(results: &[Value], out: &Path) -> Result<()> {
    let targets = ["boxoffice", "postgres", "redis"];
    let series: Vec<(&str, Vec<(f64, f64)>)> = targets
        .iter()
        .map(|t| {
            let mut pts: Vec<(f64, f64)> = results
                .iter()
                .filter(|r| r["label"] == "sweep" && r["target"] == *t)
                .filter_map(|r| Some((r["concurrency"].as_f64()?, r["attempts_per_s"].as_f64()?)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (*t, pts)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(1.0, f64::max);
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Uncontended holds (80,000 seats): attempts/s by concurrency",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..max_x * 1.1).log_scale(), 0f64..max_y * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients")
        .y_desc("hold attempts / s")
        .draw()?;
    for (t, pts) in &series {
        let c = color(t);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))?
            .label(*t)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn latency_cdf(results: &[Value], out: &Path) -> Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .filter(|r| r["label"] == "cdf")
        .filter_map(|r| {
            let name = format!("{} {}", r["target"].as_str()?, r["scenario"].as_str()?);
            let pts = r["cdf"]
                .as_array()?
                .iter()
                .filter_map(|p| Some((p[1].as_f64()?.max(0.01), p[0].as_f64()?)))
                .collect();
            Some((name, pts))
        })
        .collect();
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Hold latency distribution (64 clients)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((0.05f64..max_x * 1.5).log_scale(), 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("fraction of requests")
        .draw()?;
    for (name, pts) in &series {
        let c = color(name.split(' ').next().unwrap_or(""));
        let style = if name.contains("hot") {
            c.stroke_width(1)
        } else {
            c.stroke_width(3)
        };
        chart
            .draw_series(LineSeries::new(pts.clone(), style))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn failover(results: &[Value], out: &Path) -> Result<()> {
    let Some(run) = results.iter().find(|r| r["label"] == "failover") else {
        return Ok(());
    };
    let t = &run["timeline"];
    let bucket = t["bucket_ms"].as_f64().unwrap_or(100.0);
    let per_s = 1000.0 / bucket;
    // Counts per bucket as (seconds, requests per second).
    let series = |key: &str| -> Result<Vec<(f64, f64)>> {
        Ok(t[key]
            .as_array()
            .with_context(|| key.to_string())?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    i as f64 * bucket / 1000.0,
                    v.as_f64().unwrap_or(0.0) * per_s,
                )
            })
            .collect())
    };
    let ok = series("ok")?;
    let failed = series("failed")?;
    let max_x = ok.last().map(|p| p.0).unwrap_or(1.0);
    let max_y = ok.iter().chain(&failed).map(|p| p.1).fold(1.0, f64::max);
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Failover under load: kill -9 of the leader, then SIGTERM of the next",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("requests / s (100 ms buckets)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(ok, color("boxoffice").stroke_width(2)))?
        .label("answered (2xx or 4xx)")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                color("boxoffice").stroke_width(2),
            )
        });
    chart
        .draw_series(LineSeries::new(failed, color("postgres").stroke_width(2)))?
        .label("5xx, timeout or refused")
        .legend(|(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color("postgres").stroke_width(2))
        });
    for (key, name) in [("kill_at_s", "kill -9"), ("term_at_s", "SIGTERM")] {
        if let Some(x) = run[key].as_f64() {
            chart.draw_series(LineSeries::new(
                vec![(x, 0.0), (x, max_y * 1.1)],
                BLACK.stroke_width(1),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                name,
                (x + 0.2, max_y * 1.08),
                ("sans-serif", 16),
            )))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One soak sample: seconds, holds granted so far, etcd file, in-use and quota bytes.
struct SoakSample {
    t: f64,
    holds: f64,
    db: f64,
    in_use: f64,
    quota: f64,
}

fn soak_samples(text: &str) -> Result<Vec<SoakSample>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty samples")?.split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name}"))
    };
    let (t, holds, db, in_use, quota) = (
        col("t")?,
        col("holds")?,
        col("db_size")?,
        col("in_use")?,
        col("quota")?,
    );
    Ok(lines
        .filter_map(|l| {
            let f: Vec<f64> = l.split('\t').map(|x| x.parse().unwrap_or(0.0)).collect();
            Some(SoakSample {
                t: *f.get(t)?,
                holds: *f.get(holds)?,
                db: *f.get(db)?,
                in_use: *f.get(in_use)?,
                quota: *f.get(quota)?,
            })
        })
        .collect())
}

fn soak(samples: &[SoakSample], out: &Path) -> Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let max_t = samples.last().map(|s| s.t).unwrap_or(1.0).max(1.0);
    let quota = samples.iter().map(|s| s.quota).fold(0.0, f64::max) / MIB;
    let rate: Vec<(f64, f64)> = samples
        .windows(2)
        .filter(|w| w[1].t > w[0].t)
        .map(|w| (w[1].t, (w[1].holds - w[0].holds) / (w[1].t - w[0].t)))
        .collect();
    let max_rate = rate.iter().map(|p| p.1).fold(1.0, f64::max);
    let root = BitMapBackend::new(out, (900, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(380);
    let mut size = ChartBuilder::on(&top)
        .caption(
            "Soak: etcd database size (64 MiB quota) and hold rate",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_t, 0f64..quota.max(1.0) * 1.1)?;
    size.configure_mesh().y_desc("MiB").draw()?;
    let series = [
        ("etcd file (db size)", color("postgres"), 0),
        ("in use", color("boxoffice"), 1),
        ("quota", BLACK, 2),
    ];
    for (name, c, which) in series {
        let pts: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (s.t, [s.db, s.in_use, s.quota][which] / MIB))
            .collect();
        size.draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    size.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::MiddleRight)
        .draw()?;
    let mut holds = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_t, 0f64..max_rate * 1.15)?;
    holds
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("holds granted / s")
        .draw()?;
    holds.draw_series(LineSeries::new(rate, color("redis").stroke_width(2)))?;
    root.present()?;
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .unwrap_or_else(|| "target/bench/results.jsonl".into());
    let out_dir = args.next().unwrap_or_else(|| "docs/bench".into());
    register_font()?;
    let text = std::fs::read_to_string(&input).with_context(|| format!("reading {input}"))?;
    if input.ends_with(".tsv") {
        let out = Path::new(&out_dir);
        std::fs::create_dir_all(out)?;
        soak(&soak_samples(&text)?, &out.join("soak.png"))?;
        eprintln!("soak plot written to {out_dir}");
        return Ok(());
    }
    let results: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let out = Path::new(&out_dir);
    std::fs::create_dir_all(out)?;
    throughput(&results, &out.join("throughput.png"))?;
    latency_cdf(&results, &out.join("latency-cdf.png"))?;
    failover(&results, &out.join("failover.png"))?;
    eprintln!("plots written to {out_dir}");
    Ok(())
}
